"""Estimate the standard deviation of additive Gaussian noise from one noisy image.

Immerkær's operator (the difference of two discrete Laplacians) cancels every
intensity that is locally linear, so what it leaves is mostly noise, amplified by
the kernel's norm (6). The median absolute response, not the mean, keeps edges and
texture from inflating the estimate (the MAD of a normal variable is 0.6745 sigma).
Used by ``denoise(noise_sigma="auto")`` when the user does not know the noise level.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve

_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
_KERNEL_NORM = 6.0  # sqrt of the sum of squared kernel entries
_MAD_TO_SIGMA = 1.0 / 0.6744897501960817


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise sigma of a 2-D image, in the image's own units."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 3:
        raise ValueError(f"need a 2-D image of at least 3x3 pixels, got shape {image.shape}")
    response = convolve(image, _KERNEL, mode="reflect")[1:-1, 1:-1]
    return float(np.median(np.abs(response)) * _MAD_TO_SIGMA / _KERNEL_NORM)
