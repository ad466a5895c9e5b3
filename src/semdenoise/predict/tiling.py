"""Tiled prediction of one 2-D image with overlap and Gaussian-weighted blending.

The image is reflect-padded by a halo at least the network's receptive radius. Windows
of one fixed size start at multiples of 2**depth (so pooling cells line up with the
whole-image ones) and overlap; each window's output is weighted by a Gaussian that is
zero within the halo of its edges, where the window lacks context. With the default
halo the tiled result equals one whole-image pass up to float rounding; the blending
keeps seams invisible when a user trades halo for speed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from semdenoise.errors import InputError
from semdenoise.models.unet import UNet
from semdenoise.predict.inference import InferenceNet, inference_network


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


def blend_weights(window: tuple[int, int], halo: int) -> np.ndarray:
    """Gaussian importance map (sigma = window/8), zero within ``halo`` of every edge."""
    axes = []
    for size in window:
        coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
        weight = np.exp(-0.5 * (coords / (size / 8)) ** 2)
        weight = np.maximum(weight, 1e-3)  # far from the centre still counts a little
        weight[:halo] = 0.0
        weight[size - halo :] = 0.0
        axes.append(weight)
    return np.outer(axes[0], axes[1]).astype(np.float32)


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_tiled(
    net: UNet | InferenceNet,
    image: np.ndarray,
    *,
    tile_size: int = 1024,
    halo: int | None = None,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Apply ``net`` to a normalised (Y, X) float32 image, (C, Y, X) for a network of C
    input channels; returns (Y, X) float32, or (C, Y, X) for a network with several
    output channels (a multi-class segmenter, a denoiser of channels).

    ``tile_size`` is the largest window side fed to the network (rounded to 2**depth);
    ``halo`` the context discarded at window edges (default: the receptive radius);
    ``batch_size`` windows per pass (default: about 2 megapixels' worth). A plain
    ``UNet`` is run through a prepared copy (:func:`inference_network`: BatchNorm folded,
    channels-last on the CPU), so ``net`` itself is never changed and several threads may
    share it; an ``InferenceNet`` is used as it is.
    """
    multiple = net.config.size_multiple
    if halo is None:
        halo = net.config.receptive_radius
    halo = _round_up(halo, multiple)
    inputs = net.config.in_channels
    if inputs > 1 and (image.ndim != 3 or image.shape[0] != inputs):
        raise InputError(f"image of shape {image.shape} for a network of {inputs} channels")
    height, width = image.shape[-2:]
    padded_shape = tuple(_round_up(side + 2 * halo, multiple) for side in (height, width))
    padded = np.pad(
        image,
        [(0, 0)] * (image.ndim - 2)
        + [(halo, padded_shape[0] - height - halo), (halo, padded_shape[1] - width - halo)],
        mode="reflect" if min(height, width) > 1 else "edge",
    )
    tile = max(_round_up(tile_size, multiple), 2 * halo + 2 * multiple)
    (window_y, starts_y), (window_x, starts_x) = (
        _axis_windows(side, tile, halo, multiple) for side in padded_shape
    )
    window = (window_y, window_x)
    starts = [(y, x) for y in starts_y for x in starts_x]
    if batch_size is None:  # about 2 megapixels of windows per forward pass
        batch_size = max(1, 2_000_000 // (window_y * window_x))
    weights = blend_weights(window, halo)
    channels = net.config.out_channels
    output = np.zeros((channels, *padded_shape), dtype=np.float32)
    total = np.zeros(padded_shape, dtype=np.float32)

    device = torch.device(device)
    runner = net if isinstance(net, InferenceNet) else inference_network(net, device)
    with torch.inference_mode():
        for chunk in _batches(starts, batch_size):
            tiles = np.stack([padded[..., y : y + window[0], x : x + window[1]] for y, x in chunk])
            tiles = tiles if inputs > 1 else tiles[:, None]
            result = runner(torch.from_numpy(tiles).to(device)).cpu().numpy()
            for (y, x), prediction in zip(chunk, result, strict=True):
                output[:, y : y + window[0], x : x + window[1]] += prediction * weights
                total[y : y + window[0], x : x + window[1]] += weights
    region = (slice(halo, halo + height), slice(halo, halo + width))
    blended = output[(slice(None), *region)] / total[region]
    return blended[0] if channels == 1 else blended
