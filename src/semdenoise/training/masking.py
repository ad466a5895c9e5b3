"""Blind-spot masking for Noise2Void, done on the tensor's device inside the step.

Paper §2.1 / Fig. 2: the full image is divided into a regular grid of sub-regions and
one pixel at a random position in each is masked, i.e. replaced by the value of a
random *other* pixel of its (2r+1)² neighbourhood. Classic N2V (the baseline) masks
random positions of random 64x64 patches; N2V2 replaces with the window's median,
centre excluded. Every function works on (B, C, Y, X) images and (B, C, Z, Y, X)
volumes alike (a (2r+1)³ window in 3-D); positions are a tuple of index tensors
(b, y, x) or (b, z, y, x), one entry per masked pixel. A masked position is masked in
every channel: noise correlated across channels then cannot leak through another one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from semdenoise.config import MaskingConfig

Positions = tuple[torch.Tensor, ...]


def grid_positions(
    batch: int, *sizes: int, grid: Sequence[int], generator: torch.Generator
) -> Positions:
    """One uniformly random position per grid cell of each image: (b, *coords), each 1-D."""
    device = generator.device
    shape = (batch, *grid)
    ndim = len(sizes)
    coords = []
    for axis, (size, cells) in enumerate(zip(sizes, grid, strict=True)):
        edges = torch.linspace(0, size, cells + 1, device=device).floor().long()
        view = [1] * (ndim + 1)
        view[axis + 1] = cells
        low, width = edges[:-1].view(view), (edges[1:] - edges[:-1]).view(view)
        u = torch.rand(shape, generator=generator, device=device)
        coords.append((low + (u * width).long()).reshape(-1))
    b = torch.arange(batch, device=device).view(batch, *[1] * ndim).expand(shape)
    return (b.reshape(-1), *coords)


def random_positions(batch: int, *sizes: int, count: int, generator: torch.Generator) -> Positions:
    """``count`` distinct uniformly random positions per image (classic N2V)."""
    device = generator.device
    scores = torch.rand(batch, math.prod(sizes), generator=generator, device=device)
    flat = scores.topk(count, dim=1).indices
    b = torch.arange(batch, device=device).view(batch, 1).expand_as(flat)
    return (b.reshape(-1), *(c.reshape(-1) for c in torch.unravel_index(flat, sizes)))


def neighbour_positions(
    coords: Sequence[torch.Tensor],
    sizes: Sequence[int],
    *,
    radius: int,
    generator: torch.Generator,
) -> Positions:
    """A uniformly random other pixel of each position's window, clipped to the image.

    Sampling from the clipped window (rather than clipping a sampled offset) keeps the
    distribution uniform and guarantees the source is never the position itself.
    """
    lows = [(c - radius).clamp(min=0) for c in coords]
    spans = [
        (c + radius).clamp(max=size - 1) - low + 1
        for c, size, low in zip(coords, sizes, lows, strict=True)
    ]
    cells = torch.ones_like(coords[0])
    centre = torch.zeros_like(coords[0])
    for c, low, span in zip(coords, lows, spans, strict=True):
        centre = centre * span + (c - low)
        cells = cells * span
    u = torch.rand(coords[0].shape, generator=generator, device=coords[0].device)
    k = (u * (cells - 1)).long()  # one of the window's other cells
    k = k + (k >= centre).long()
    picked = []
    for low, span in zip(reversed(lows), reversed(spans), strict=True):
        picked.append(low + k % span)
        k = k // span
    return tuple(reversed(picked))


def window_medians(image: torch.Tensor, positions: Positions, *, radius: int) -> torch.Tensor:
    """Median of each position's (2r+1)^n window without its centre (N2V2), in-image
    only: (N, C), per channel."""
    b, *coords = positions
    sizes = image.shape[2:]
    offsets = torch.arange(-radius, radius + 1, device=image.device)
    grids = torch.meshgrid(*[offsets] * len(coords), indexing="ij")
    keep = torch.stack([g != 0 for g in grids]).any(dim=0)
    neighbours = [c[:, None] + g[keep][None] for c, g in zip(coords, grids, strict=True)]
    inside = torch.ones_like(neighbours[0], dtype=torch.bool)
    for n, size in zip(neighbours, sizes, strict=True):
        inside &= (n >= 0) & (n < size)
    clamped = [n.clamp(0, size - 1) for n, size in zip(neighbours, sizes, strict=True)]
    values = image[(b[:, None], slice(None), *clamped)]  # (N, window, C)
    values = values.masked_fill(~inside[..., None], float("nan"))
    return values.nanmedian(dim=1).values


def mask_batch(
    image: torch.Tensor, config: MaskingConfig, *, generator: torch.Generator
) -> tuple[torch.Tensor, Positions]:
    """Masked copy of a (B, C, Y, X) or (B, C, Z, Y, X) batch and the masked positions.

    Grid mode masks one pixel per grid cell; patch mode masks ``patch_fraction`` of the
    pixels at random. The input is not modified.
    """
    batch, sizes = image.shape[0], tuple(image.shape[2:])
    if config.mode == "grid":
        positions = grid_positions(
            batch, *sizes, grid=config.grid_shape(*sizes), generator=generator
        )
    else:
        count = max(1, round(config.patch_fraction * math.prod(sizes)))
        positions = random_positions(batch, *sizes, count=count, generator=generator)
    b, *coords = positions
    masked = image.clone()
    if config.replacement == "median":
        masked[(b, slice(None), *coords)] = window_medians(image, positions, radius=config.radius)
    else:
        sources = neighbour_positions(coords, sizes, radius=config.radius, generator=generator)
        masked[(b, slice(None), *coords)] = image[(b, slice(None), *sources)]
    return masked, positions
