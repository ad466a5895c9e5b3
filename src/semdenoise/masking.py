"""Blind-spot masking for Noise2Void, done on the tensor's device inside the step.

Paper §2.1 / Fig. 2: the full image is divided into a regular grid of sub-regions and
one pixel at a random position in each is masked, i.e. replaced by the value of a
random *other* pixel of its (2r+1)² neighbourhood. Classic N2V (the baseline) masks
random positions of random 64x64 patches; N2V2 replaces with the window's median,
centre excluded. Positions are returned as flat indices into the (B, 1, H, W) batch.
"""

from __future__ import annotations

import torch

from semdenoise.config import MaskingConfig


def grid_positions(
    batch: int, height: int, width: int, *, grid: tuple[int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One uniformly random (y, x) per grid cell of each image: (b, y, x), each 1-D."""
    device = generator.device
    rows, cols = grid
    y_edges = torch.linspace(0, height, rows + 1, device=device).floor().long()
    x_edges = torch.linspace(0, width, cols + 1, device=device).floor().long()
    y0, y1 = y_edges[:-1], y_edges[1:]
    x0, x1 = x_edges[:-1], x_edges[1:]
    shape = (batch, rows, cols)
    u_y = torch.rand(shape, generator=generator, device=device)
    u_x = torch.rand(shape, generator=generator, device=device)
    y = y0.view(1, rows, 1) + (u_y * (y1 - y0).view(1, rows, 1)).long()
    x = x0.view(1, 1, cols) + (u_x * (x1 - x0).view(1, 1, cols)).long()
    b = torch.arange(batch, device=device).view(batch, 1, 1).expand(shape)
    return b.reshape(-1), y.reshape(-1), x.reshape(-1)


def random_positions(
    batch: int, height: int, width: int, *, count: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` distinct uniformly random positions per image (classic N2V)."""
    device = generator.device
    scores = torch.rand(batch, height * width, generator=generator, device=device)
    flat = scores.topk(count, dim=1).indices
    b = torch.arange(batch, device=device).view(batch, 1).expand_as(flat)
    return b.reshape(-1), (flat // width).reshape(-1), (flat % width).reshape(-1)


def neighbour_positions(
    y: torch.Tensor,
    x: torch.Tensor,
    height: int,
    width: int,
    *,
    radius: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A uniformly random other pixel of each position's window, clipped to the image.

    Sampling from the clipped window (rather than clipping a sampled offset) keeps the
    distribution uniform and guarantees the source is never the position itself.
    """
    y_lo = (y - radius).clamp(min=0)
    y_hi = (y + radius).clamp(max=height - 1)
    x_lo = (x - radius).clamp(min=0)
    x_hi = (x + radius).clamp(max=width - 1)
    win_h, win_w = y_hi - y_lo + 1, x_hi - x_lo + 1
    centre = (y - y_lo) * win_w + (x - x_lo)
    u = torch.rand(y.shape, generator=generator, device=y.device)
    k = (u * (win_h * win_w - 1)).long()  # one of the window's other cells
    k = k + (k >= centre).long()
    return y_lo + k // win_w, x_lo + k % win_w


def window_medians(
    image: torch.Tensor, b: torch.Tensor, y: torch.Tensor, x: torch.Tensor, *, radius: int
) -> torch.Tensor:
    """Median of each position's (2r+1)² window without its centre (N2V2), in-image only."""
    height, width = image.shape[-2:]
    offsets = torch.arange(-radius, radius + 1, device=image.device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    keep = (dy != 0) | (dx != 0)
    dy, dx = dy[keep], dx[keep]
    ny = y[:, None] + dy[None]
    nx = x[:, None] + dx[None]
    inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
    values = image[b[:, None], 0, ny.clamp(0, height - 1), nx.clamp(0, width - 1)]
    values = values.masked_fill(~inside, float("nan"))
    return values.nanmedian(dim=1).values


def mask_batch(
    image: torch.Tensor, config: MaskingConfig, *, generator: torch.Generator
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Masked copy of a (B, 1, H, W) batch and the masked positions (b, y, x).

    Grid mode masks one pixel per grid cell; patch mode masks ``patch_fraction`` of the
    pixels at random. The input is not modified.
    """
    batch, _, height, width = image.shape
    if config.mode == "grid":
        positions = grid_positions(
            batch, height, width, grid=config.grid_shape(height, width), generator=generator
        )
    else:
        count = max(1, round(config.patch_fraction * height * width))
        positions = random_positions(batch, height, width, count=count, generator=generator)
    b, y, x = positions
    masked = image.clone()
    if config.replacement == "median":
        masked[b, 0, y, x] = window_medians(image, b, y, x, radius=config.radius)
    else:
        src_y, src_x = neighbour_positions(
            y, x, height, width, radius=config.radius, generator=generator
        )
        masked[b, 0, y, x] = image[b, 0, src_y, src_x]
    return masked, positions
