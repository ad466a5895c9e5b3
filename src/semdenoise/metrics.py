"""Image-quality metrics. ``data_range`` is required: guessing it from the dtype is wrong
for float images and silently changes PSNR by decibels."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(clean: np.ndarray, image: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB of ``image`` against ``clean``."""
    return float(peak_signal_noise_ratio(clean, image, data_range=data_range))


def ssim(clean: np.ndarray, image: np.ndarray, *, data_range: float) -> float:
    """Structural similarity (scikit-image defaults: 7x7 window) of a 2-D image."""
    return float(structural_similarity(clean, image, data_range=data_range))
