"""Tiled prediction of one (Z, Y, X) volume with a 3-D network: overlap and blending.

The same scheme as the 2-D :mod:`semdenoise.predict.tiling`, per axis: the volume is
reflect-padded by a halo at least the network's receptive radius along that axis (Z's
is smaller where levels pool in Y/X only), windows start at multiples of the axis's
pooling cell, and each window's output is weighted by a Gaussian that is zero within
the halo. With the default halo the tiled result equals one whole-volume pass up to
float rounding. Windows are bounded by a voxel budget rather than a side, since 3-D
activations grow with the cube of the side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from semdenoise.models.unet import UNet
from semdenoise.predict.inference import InferenceNet, inference_network
from semdenoise.predict.tiling import _axis_windows, _batches, _round_up

# Voxels per window: with 32 base channels about 1.5 GB of activations at the top level.
DEFAULT_WINDOW_VOXELS = 2**21


def axis_blend_weight(size: int, halo: int) -> np.ndarray:
    """1-D Gaussian importance (sigma = size/8), zero within ``halo`` of either end: the
    per-axis factor of :func:`semdenoise.predict.tiling.blend_weights`."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    weight = np.maximum(np.exp(-0.5 * (coords / (size / 8)) ** 2), 1e-3)
    weight[:halo] = 0.0
    weight[size - halo :] = 0.0
    return weight


def blend_weights_3d(window: Sequence[int], halos: Sequence[int]) -> np.ndarray:
    """Outer product of the per-axis weights, float32, shape ``window``."""
    z, y, x = (axis_blend_weight(s, h) for s, h in zip(window, halos, strict=True))
    return (z[:, None, None] * y[None, :, None] * x[None, None, :]).astype(np.float32)


def window_shape(
    padded: Sequence[int],
    halos: Sequence[int],
    multiples: Sequence[int],
    *,
    max_sides: Sequence[int | None],
    max_voxels: int,
) -> tuple[int, ...]:
    """Largest window per axis (≤ ``max_sides``, ≤ the padded volume) whose voxel count
    fits ``max_voxels``, shrinking the axis with the largest core (window minus halos)
    first: near-cubic cores waste the least on halos. Never below two halos plus two
    pooling cells."""
    smallest = [2 * h + 2 * m for h, m in zip(halos, multiples, strict=True)]
    tile = [
        max(_round_up(min(cap or side, side), m), low)
        for side, cap, m, low in zip(padded, max_sides, multiples, smallest, strict=True)
    ]
    while math.prod(tile) > max_voxels:
        shrinkable = [a for a in range(3) if tile[a] - multiples[a] >= smallest[a]]
        if not shrinkable:
            break
        axis = max(shrinkable, key=lambda a: tile[a] - 2 * halos[a])
        tile[axis] -= multiples[axis]
    return tuple(tile)


def predict_tiled_3d(
    net: UNet | InferenceNet,
    volume: np.ndarray,
    *,
    tile_size: int | Sequence[int] | None = None,
    max_voxels: int = DEFAULT_WINDOW_VOXELS,
    halo: Sequence[int] | None = None,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Apply a 3-D ``net`` to a normalised (Z, Y, X) float32 volume; returns the same shape.

    ``tile_size`` caps the window side: an int caps Y and X (the CLI's ``--tile-size``),
    three ints cap (Z, Y, X); within the caps windows grow to ``max_voxels``. ``halo``
    is the (Z, Y, X) context discarded at window edges (default: the receptive radii);
    ``batch_size`` windows per pass (default: as many as fit ``max_voxels``).
    """
    config = net.config
    if config.dims != 3 or volume.ndim != 3:
        raise ValueError(
            f"need a 3-D network and a 3-D volume, got {config.dims}-D, {volume.ndim}-D"
        )
    multiples = (config.z_multiple, config.size_multiple, config.size_multiple)
    if halo is None:
        halo = (config.receptive_radius_z, config.receptive_radius, config.receptive_radius)
    halos = tuple(_round_up(h, m) for h, m in zip(halo, multiples, strict=True))
    shape = volume.shape
    padded_shape = tuple(
        _round_up(side + 2 * h, m) for side, h, m in zip(shape, halos, multiples, strict=True)
    )
    padded = np.pad(
        volume,
        [(h, p - side - h) for side, h, p in zip(shape, halos, padded_shape, strict=True)],
        mode="reflect" if min(shape) > 1 else "edge",
    )
    if tile_size is None or isinstance(tile_size, int):
        max_sides = (None, tile_size, tile_size)
    else:
        max_sides = tuple(tile_size)
    tile = window_shape(padded_shape, halos, multiples, max_sides=max_sides, max_voxels=max_voxels)
    axes = [
        _axis_windows(side, t, h, m)
        for side, t, h, m in zip(padded_shape, tile, halos, multiples, strict=True)
    ]
    window = tuple(size for size, _ in axes)
    starts = [(z, y, x) for z in axes[0][1] for y in axes[1][1] for x in axes[2][1]]
    if batch_size is None:
        batch_size = max(1, max_voxels // math.prod(window))
    weights = blend_weights_3d(window, halos)
    output = np.zeros(padded_shape, dtype=np.float32)
    total = np.zeros(padded_shape, dtype=np.float32)

    device = torch.device(device)
    # a prepared copy (BatchNorm folded, on ``device``): ``net`` itself is never moved
    # or switched to eval mode, so Dask threads and the caller may share it
    runner = (
        net
        if isinstance(net, InferenceNet)
        else inference_network(net, device, channels_last=False)
    )
    with torch.inference_mode():
        for chunk in _batches(starts, batch_size):
            regions = [
                tuple(slice(s, s + w) for s, w in zip(start, window, strict=True))
                for start in chunk
            ]
            tiles = np.stack([padded[region] for region in regions])[:, None]
            result = runner(torch.from_numpy(tiles).to(device))[:, 0].cpu().numpy()
            for region, prediction in zip(regions, result, strict=True):
                output[region] += prediction * weights
                total[region] += weights
    core = tuple(slice(h, h + side) for h, side in zip(halos, shape, strict=True))
    return output[core] / total[core]


def predict_volume(
    net: UNet | InferenceNet, volume: np.ndarray, *, tta: bool = False, **tiling
) -> np.ndarray:
    """:func:`predict_tiled_3d`, or with ``tta`` the mean over the 8 rotations/flips in
    Y/X (the training symmetries that keep Z as it is), 8x the time."""
    if not tta:
        return predict_tiled_3d(net, volume, **tiling)
    if not isinstance(net, InferenceNet):  # prepare the copy once for all 8 passes
        net = inference_network(net, tiling.get("device", "cpu"), channels_last=False)
    result = np.zeros(volume.shape, dtype=np.float32)
    for k in range(8):
        view = np.rot90(volume, k % 4, axes=(1, 2))
        view = view[:, :, ::-1] if k >= 4 else view
        predicted = predict_tiled_3d(net, np.ascontiguousarray(view), **tiling)
        predicted = predicted[:, :, ::-1] if k >= 4 else predicted
        result += np.rot90(predicted, -(k % 4), axes=(1, 2))
    return result / 8
