"""Blind-spot prediction at inference: every pixel predicted without seeing its value.

A Noise2Void network is blind only where training masked it; shown the whole image at
inference it partly copies each pixel's own noisy value (on a smooth test image its
output sat closer to the noisy input than the clean image did). That is harmless for
the bare prediction but double-counts the pixel when the posterior mean adds the
observed value back (models/noise_model.py). So a model with a noise model predicts in
``stride``² passes: pass (a, b) masks every pixel with y % stride == a and
x % stride == b, replacing it by the median of its window without its centre (as N2V2
masks; deterministic, unlike a random neighbour), and keeps the network's outputs at
exactly those pixels. Masked pixels of one pass are ``stride`` apart, so none lies in
another's replacement window for ``stride`` > the masking radius.
"""

from __future__ import annotations

import numpy as np

from semdenoise.models.unet import UNet
from semdenoise.predict.tiling import predict_tiled

# 4x4 = 16 passes: one masked pixel in 16 (the training default masks one in 25)
BLIND_STRIDE = 4


def window_medians(image: np.ndarray, radius: int) -> np.ndarray:
    """Each pixel's median over its (2r+1)² window without the centre (image edges
    mirrored), in the last two axes (per channel of a (C, Y, X) image)."""
    height, width = image.shape[-2:]
    pad = [(0, 0)] * (image.ndim - 2) + [(radius, radius)] * 2
    padded = np.pad(image, pad, mode="reflect" if min(height, width) > radius else "edge")
    shifts = [
        padded[..., dy : dy + height, dx : dx + width]
        for dy in range(2 * radius + 1)
        for dx in range(2 * radius + 1)
        if (dy, dx) != (radius, radius)
    ]
    return np.median(np.stack(shifts), axis=0).astype(np.float32)


def blind_prediction(
    net: UNet,
    image: np.ndarray,
    *,
    radius: int,
    stride: int = BLIND_STRIDE,
    **tiling,
) -> np.ndarray:
    """(outputs, Y, X) of ``net`` on a normalised (C, Y, X) or (Y, X) image, each pixel's from a
    pass in which that pixel was masked (in every channel, as training masks).
    ``tiling``: options of :func:`predict_tiled`."""
    stride = max(stride, radius + 1)
    image = np.asarray(image, dtype=np.float32)
    image = image[None] if image.ndim == 2 else image  # (Y, X): one channel
    medians = window_medians(image, radius)
    output = None
    for a in range(min(stride, image.shape[-2])):
        for b in range(min(stride, image.shape[-1])):
            masked = image.copy()
            masked[..., a::stride, b::stride] = medians[..., a::stride, b::stride]
            predicted = predict_tiled(net, masked[0] if len(masked) == 1 else masked, **tiling)
            predicted = predicted.reshape(-1, *image.shape[-2:])
            if output is None:
                output = np.empty_like(predicted)
            output[:, a::stride, b::stride] = predicted[:, a::stride, b::stride]
    return output
