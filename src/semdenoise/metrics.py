"""Image-quality metrics. ``data_range`` is required: guessing it from the dtype is wrong
for float images and silently changes PSNR by decibels."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(clean: np.ndarray, image: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB of ``image`` against ``clean``."""
    return float(peak_signal_noise_ratio(clean, image, data_range=data_range))


def ssim(clean: np.ndarray, image: np.ndarray, *, data_range: float) -> float:
    """Structural similarity (scikit-image defaults: 7x7 window) of a 2-D image."""
    return float(structural_similarity(clean, image, data_range=data_range))


def foreground_iou(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Intersection over union of the foreground (non-zero) of two masks; 1 if both empty."""
    truth, prediction = np.asarray(truth) != 0, np.asarray(prediction) != 0
    union = np.logical_or(truth, prediction).sum()
    return 1.0 if union == 0 else float(np.logical_and(truth, prediction).sum() / union)


def dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Dice coefficient of the foreground of two masks; 1 if both empty."""
    truth, prediction = np.asarray(truth) != 0, np.asarray(prediction) != 0
    total = truth.sum() + prediction.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(truth, prediction).sum() / total)


def foreground_iou_torch(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Foreground IoU of boolean tensors, for validation inside a training step."""
    union = (prediction | truth).sum()
    if union == 0:
        return torch.ones((), device=prediction.device)
    return (prediction & truth).sum() / union
