"""Image-quality and segmentation metrics. ``data_range`` is required: guessing it from
the dtype is wrong for float images and silently changes PSNR by decibels."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from skimage.measure import label
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.segmentation import relabel_sequential


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


@dataclass(frozen=True)
class DetectionScores:
    """Object-level recognition from a segmentation (the paper's Tab. 2–3 read-out)."""

    precision: float
    recall: float
    f1: float
    mean_matched_iou: float  # over matched pairs; 0 when nothing matched
    n_true: int
    n_predicted: int
    n_matched: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def detection_scores(
    truth: np.ndarray, prediction: np.ndarray, *, iou_threshold: float = 0.5
) -> DetectionScores:
    """Match objects one to one at IoU >= ``iou_threshold``.

    ``truth`` is an instance label image (each object its own integer) or a binary mask
    (its connected components are the objects); ``prediction`` is a mask or label image
    whose foreground is split into connected components. Pairs are matched by maximum
    total IoU (Hungarian), so the count does not depend on object order.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ")
    true_labels = _objects(truth)
    predicted_labels = label(prediction != 0)
    n_true, n_predicted = int(true_labels.max()), int(predicted_labels.max())
    matched_ious = np.zeros(0)
    if n_true and n_predicted:
        pairs = np.bincount(
            true_labels.ravel().astype(np.int64) * (n_predicted + 1) + predicted_labels.ravel(),
            minlength=(n_true + 1) * (n_predicted + 1),
        ).reshape(n_true + 1, n_predicted + 1)
        intersection = pairs[1:, 1:].astype(np.float64)
        areas_true, areas_predicted = pairs[1:, :].sum(1), pairs[:, 1:].sum(0)
        union = areas_true[:, None] + areas_predicted[None, :] - intersection
        iou = intersection / union
        rows, cols = linear_sum_assignment(-iou)
        matched_ious = iou[rows, cols]
        matched_ious = matched_ious[matched_ious >= iou_threshold]
    n_matched = len(matched_ious)
    return DetectionScores(
        precision=n_matched / n_predicted if n_predicted else 1.0,
        recall=n_matched / n_true if n_true else 1.0,
        f1=2 * n_matched / (n_true + n_predicted) if n_true + n_predicted else 1.0,
        mean_matched_iou=float(matched_ious.mean()) if n_matched else 0.0,
        n_true=n_true,
        n_predicted=n_predicted,
        n_matched=n_matched,
    )


def _objects(truth: np.ndarray) -> np.ndarray:
    """Instance labels as consecutive integers: a binary mask is split into components."""
    if truth.dtype == bool or np.unique(truth).size <= 2:
        return label(truth != 0)
    relabelled, _, _ = relabel_sequential(truth.astype(np.int64))
    return relabelled
