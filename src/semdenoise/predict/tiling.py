"""Tiled prediction of a 2-D image or a 3-D volume with overlap and Gaussian-weighted blending.

One scheme for every spatial axis: the array is reflect-padded by a halo at least the
network's receptive radius along that axis (Z's is smaller where levels pool in Y/X
only). Windows of one fixed shape start at multiples of the axis's pooling cell (so
pooling cells line up with the whole-array ones) and overlap; each window's output is
weighted by a Gaussian that is zero within the halo of its edges, where the window lacks
context. With the default halo the tiled result equals one whole-array pass up to float
rounding; the blending keeps seams invisible when a user trades halo for speed.

An array cut from a larger one (a Zarr chunk read with its halo) already carries real
context at its cut edges: ``context`` names it, and the predictor then pads only where
it does not reach the halo (the image's own borders) and returns the part inside it.
Padding such an array again would predict about 1.5x the pixels of a 1024-pixel chunk.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from semdenoise.config import DEFAULT_TILE_SIZE, UNetConfig
from semdenoise.errors import InputError
from semdenoise.models.unet import UNet
from semdenoise.predict.inference import InferenceNet, inference_network

# Largest 2-D window side. 3-D windows are bounded by a voxel budget instead, since 3-D
# activations grow with the cube of the side: with 32 base channels, 2**21 voxels take
# about 1.5 GB of activations at the top level.
DEFAULT_WINDOW_VOXELS = 2**21
# Pixels of windows per forward pass in 2-D, when no voxel budget is given.
_BATCH_PIXELS = 2_000_000


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _axis_windows(padded: int, tile: int, halo: int, multiple: int) -> tuple[int, list[int]]:
    """Window size and starts along one axis: as few windows as ``tile`` allows, each
    no larger than needed, starts at multiples of ``multiple``, cores overlapping by at
    least ``multiple`` (and about an eighth of a core) for blending."""
    if padded <= tile:
        return padded, [0]
    core_max = tile - 2 * halo
    overlap = _round_up(max(multiple, core_max // 8), multiple)
    count = math.ceil((padded - tile) / (core_max - overlap)) + 1
    # smallest window for which ``count`` windows still cover the axis with that overlap
    window = _round_up(math.ceil((padded + (count - 1) * (2 * halo + overlap)) / count), multiple)
    window = min(window, tile)
    starts = [
        (k * (padded - window) // (count - 1)) // multiple * multiple for k in range(count - 1)
    ]
    return window, [*starts, padded - window]


def axis_blend_weight(size: int, halo: int) -> np.ndarray:
    """1-D Gaussian importance (sigma = size/8), zero within ``halo`` of either end."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    weight = np.exp(-0.5 * (coords / (size / 8)) ** 2)
    weight = np.maximum(weight, 1e-3)  # far from the centre still counts a little
    weight[:halo] = 0.0
    weight[size - halo :] = 0.0
    return weight


def blend_weights(window: Sequence[int], halo: int | Sequence[int]) -> np.ndarray:
    """Gaussian importance map of shape ``window``, float32: the outer product of the
    per-axis weights, zero within each axis's ``halo`` (one int: every axis) of its edges."""
    halos = _per_axis(halo, len(window))
    axes = [axis_blend_weight(size, h) for size, h in zip(window, halos, strict=True)]
    return functools.reduce(np.multiply.outer, axes).astype(np.float32)


def window_shape(
    padded: Sequence[int],
    halos: Sequence[int],
    multiples: Sequence[int],
    *,
    max_sides: Sequence[int | None],
    max_voxels: int | None,
) -> tuple[int, ...]:
    """Largest window per axis (≤ ``max_sides``, ≤ the padded array) whose voxel count
    fits ``max_voxels``, shrinking the axis with the largest core (window minus halos)
    first: near-cubic cores waste the least on halos. Never below two halos plus two
    pooling cells."""
    smallest = [2 * h + 2 * m for h, m in zip(halos, multiples, strict=True)]
    tile = [
        max(_round_up(side if cap is None else min(cap, side), m), low)
        for side, cap, m, low in zip(padded, max_sides, multiples, smallest, strict=True)
    ]
    while max_voxels is not None and math.prod(tile) > max_voxels:
        shrinkable = [a for a in range(len(tile)) if tile[a] - multiples[a] >= smallest[a]]
        if not shrinkable:
            break
        axis = max(shrinkable, key=lambda a: tile[a] - 2 * halos[a])
        tile[axis] -= multiples[axis]
    return tuple(tile)


def _per_axis(value: int | Sequence[int], count: int) -> tuple[int, ...]:
    return (value,) * count if isinstance(value, int) else tuple(value)


def _spatial_geometry(config: UNetConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per spatial axis, the pooling cell and the receptive radius: (Y, X) or (Z, Y, X)."""
    if config.dims == 3:
        multiples = (config.z_multiple, config.size_multiple, config.size_multiple)
        radii = (config.receptive_radius_z, config.receptive_radius, config.receptive_radius)
        return multiples, radii
    return (config.size_multiple,) * 2, (config.receptive_radius,) * 2


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def prepared(net: UNet | InferenceNet, device: torch.device | str = "cpu") -> InferenceNet:
    """A prepared copy (BatchNorm folded, on ``device``; :func:`inference_network`):
    ``net`` itself is never moved or switched to eval mode, so Dask threads and the
    caller may share it. An ``InferenceNet`` is returned as it is."""
    if isinstance(net, InferenceNet):
        return net
    return inference_network(net, torch.device(device))


def _padding(size: int, halo: int, multiple: int, given: tuple[int, int]) -> tuple[int, int, int]:
    """Padding before and after one axis of ``size`` whose ends carry ``given`` pixels of
    real context, and the padded size: each end gets at least ``halo`` of context in all,
    the part to predict starts on the pooling grid, the padded size is a multiple of it."""
    before_given, after_given = given
    before = _round_up(max(halo - before_given, 0) + before_given, multiple) - before_given
    padded = _round_up(before + size + max(halo - after_given, 0), multiple)
    return before, padded - before - size, padded


def symmetry_context(context: Sequence[tuple[int, int]], k: int) -> tuple[tuple[int, int], ...]:
    """``context`` of an array after the k-th square symmetry of its last two axes
    (``np.rot90`` by k % 4 quarter turns, then a flip of X for k >= 4)."""
    *leading, (y_before, y_after), (x_before, x_after) = context
    for _ in range(k % 4):  # a quarter turn: new Y is old X reversed, new X is old Y
        (y_before, y_after), (x_before, x_after) = (x_after, x_before), (y_before, y_after)
    if k >= 4:
        x_before, x_after = x_after, x_before
    return (*map(tuple, leading), (y_before, y_after), (x_before, x_after))


def predict_tiled(
    net: UNet | InferenceNet,
    image: np.ndarray,
    *,
    tile_size: int | Sequence[int] | None = None,
    max_voxels: int | None = None,
    halo: int | Sequence[int] | None = None,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    context: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Apply ``net`` to a normalised float32 image of shape ``(*spatial)``, or
    ``(in_channels, *spatial)`` for a network with several input channels; spatial is
    (Y, X) or (Z, Y, X) by ``net.config.dims``. Returns float32 ``(*spatial)``, or
    ``(out_channels, *spatial)`` for a network with several output channels (a
    multi-class segmenter, a denoiser with a variance head).

    ``tile_size`` caps the window side: an int caps Y and X (the CLI's ``--tile-size``),
    one int per spatial axis caps each (default: 1024 in 2-D, none in 3-D);
    ``max_voxels`` bounds the voxels of one window (default: none in 2-D, 2**21 in
    3-D); within both, windows are as large as the image allows. ``halo`` is the
    context discarded at window edges, one int for every axis or one per spatial axis
    (default: the receptive radii); ``batch_size`` windows per pass (default: as many as
    fit ``max_voxels``, or about 2 megapixels in 2-D). A plain ``UNet`` is run through a
    prepared copy (:func:`inference_network`: BatchNorm folded, channels-last for 2-D on
    the CPU), so ``net`` itself is never changed and several threads may share it; an
    ``InferenceNet`` is used as it is.

    ``context``, per spatial axis (before, after): pixels at each end of the image that
    are context only (a chunk's halo, read from its neighbours). They are not padded
    again (ends with less context than the halo are padded up to it) and not returned:
    the result covers the image without them. For a chunk whose cut edges lie on the
    pooling grid this equals the whole array's prediction there, up to float rounding.
    """
    config = net.config
    dims, channels_in = config.dims, config.in_channels
    leading = (channels_in,) if channels_in > 1 else ()  # the channel axis, if any
    if image.ndim != len(leading) + dims or image.shape[: len(leading)] != leading:
        spatial = "Y, X" if dims == 2 else "Z, Y, X"
        needs = f"({channels_in}, {spatial})" if leading else f"({spatial})"
        raise InputError(
            f"image of shape {image.shape}: a {dims}-D network with {channels_in} input "
            f"channel(s) needs {needs}"
        )
    planes = image if channels_in > 1 else image[None]  # (channels, *spatial) from here
    shape = planes.shape[1:]

    multiples, radii = _spatial_geometry(config)
    halos = tuple(
        _round_up(h, m)
        for h, m in zip(radii if halo is None else _per_axis(halo, dims), multiples, strict=True)
    )
    given = ((0, 0),) * dims if context is None else tuple(map(tuple, context))
    if len(given) != dims or any(
        b < 0 or a < 0 or b + a >= n for (b, a), n in zip(given, shape, strict=True)
    ):
        raise ValueError(f"context {context} does not fit an image of shape {shape}")
    pads = [_padding(*axis) for axis in zip(shape, halos, multiples, given, strict=True)]
    padded_shape = tuple(size for _, _, size in pads)
    padded = np.pad(
        planes,
        [(0, 0)] + [(before, after) for before, after, _ in pads],
        mode="reflect" if min(shape) > 1 else "edge",
    )
    if dims == 2 and tile_size is None:
        tile_size = DEFAULT_TILE_SIZE
    if dims == 3 and max_voxels is None:
        max_voxels = DEFAULT_WINDOW_VOXELS
    if tile_size is None or isinstance(tile_size, int):
        max_sides = (*(None,) * (dims - 2), tile_size, tile_size)
    else:
        max_sides = tuple(tile_size)
    tile = window_shape(padded_shape, halos, multiples, max_sides=max_sides, max_voxels=max_voxels)
    axes = [
        _axis_windows(side, t, h, m)
        for side, t, h, m in zip(padded_shape, tile, halos, multiples, strict=True)
    ]
    window = tuple(size for size, _ in axes)
    starts = list(itertools.product(*(axis_starts for _, axis_starts in axes)))
    if batch_size is None:
        batch_size = max(1, (max_voxels or _BATCH_PIXELS) // math.prod(window))
    weights = blend_weights(window, halos)
    channels_out = config.out_channels
    output = np.zeros((channels_out, *padded_shape), dtype=np.float32)
    total = np.zeros(padded_shape, dtype=np.float32)

    device = torch.device(device)
    runner = prepared(net, device)
    with torch.inference_mode():
        for chunk in _batches(starts, batch_size):
            regions = [
                tuple(slice(s, s + w) for s, w in zip(start, window, strict=True))
                for start in chunk
            ]
            tiles = np.stack([padded[(slice(None), *region)] for region in regions])
            result = runner(torch.from_numpy(tiles).to(device)).cpu().numpy()
            for region, prediction in zip(regions, result, strict=True):
                output[(slice(None), *region)] += prediction * weights
                total[region] += weights
    core = tuple(
        slice(pad + before, pad + side - after)
        for (pad, _, _), side, (before, after) in zip(pads, shape, given, strict=True)
    )
    blended = output[(slice(None), *core)] / total[core]
    return blended[0] if channels_out == 1 else blended


def predict_tta(net: UNet | InferenceNet, image: np.ndarray, **tiling) -> np.ndarray:
    """:func:`predict_tiled` averaged over the 8 rotations/flips in Y/X (the training
    symmetries; a volume's Z stays as it is): less residual noise, 8x the time."""
    net = prepared(net, tiling.get("device", "cpu"))  # once for all 8 passes
    context = tiling.pop("context", None)
    result = None
    for k in range(8):
        view = np.rot90(image, k % 4, axes=(-2, -1))
        view = view[..., ::-1] if k >= 4 else view
        if context is not None:
            tiling["context"] = symmetry_context(context, k)
        predicted = predict_tiled(net, np.ascontiguousarray(view), **tiling)
        predicted = predicted[..., ::-1] if k >= 4 else predicted
        predicted = np.rot90(predicted, -(k % 4), axes=(-2, -1))
        result = predicted if result is None else result + predicted
    return result / 8
