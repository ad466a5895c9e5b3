"""Image-quality and segmentation metrics. ``data_range`` is required: guessing it from
the dtype is wrong for float images and silently changes PSNR by decibels."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from semdenoise.models.targets import objects_of


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


@dataclass(frozen=True)
class DetectionScores:
    """Object-level recognition from a segmentation (the paper's Tab. 2–3 read-out), and
    the instance scores DenoiSeg and the Cell Tracking Challenge report (AP, SEG)."""

    precision: float
    recall: float
    f1: float
    mean_matched_iou: float  # over matched pairs; 0 when nothing matched
    n_true: int
    n_predicted: int
    n_matched: int
    ap: float  # DenoiSeg's AP: matched / (matched + false positives + misses)
    seg: float  # Cell Tracking Challenge SEG: mean over true objects; 1 when there are none

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def object_scores_from_counts(
    matched: ArrayLike, true: ArrayLike, predicted: ArrayLike, seg_sum: ArrayLike
) -> dict[str, np.ndarray]:
    """F1, AP and SEG from object counts: of one image, summed over images (pooled), or
    arrays of such sums (one per bootstrap resample); each is 1 where it has nothing to
    count. ``seg_sum`` is SEG times the number of true objects."""
    matched, true, predicted, seg_sum = (
        np.asarray(a, dtype=np.float64) for a in (matched, true, predicted, seg_sum)
    )
    found_or_missed = true + predicted - matched  # TP + FP + FN
    # counts are whole numbers, so a floor of 1 only guards the 0/0 case
    return {
        "F1": np.where(true + predicted > 0, 2 * matched / np.maximum(true + predicted, 1), 1.0),
        "AP": np.where(found_or_missed > 0, matched / np.maximum(found_or_missed, 1), 1.0),
        "SEG": np.where(true > 0, seg_sum / np.maximum(true, 1), 1.0),
    }


def detection_scores(
    truth: np.ndarray, prediction: np.ndarray, *, iou_threshold: float = 0.5
) -> DetectionScores:
    """Match objects one to one at IoU >= ``iou_threshold``; score AP and SEG.

    The objects of ``truth`` and ``prediction`` are those of :func:`objects_of` (an
    instance image's labels, a mask's connected components). Pairs are matched by
    maximum total IoU (Hungarian), so the count does not depend on object order. AP is
    DenoiSeg's (Buchholz et al. 2020): TP / (TP + FP + FN) over these matches. SEG is the
    Cell Tracking Challenge's: each true object scores its IoU with the predicted object
    covering more than half of its pixels (at most one can), 0 if none; SEG is their
    mean. SEG ignores false positives and does not depend on ``iou_threshold``.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ")
    true_labels = objects_of(truth)
    predicted_labels = objects_of(prediction)
    n_true, n_predicted = int(true_labels.max()), int(predicted_labels.max())
    matched_ious = np.zeros(0)
    seg_sum = 0.0
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
        covers_most = 2 * intersection > areas_true[:, None]
        seg_sum = float(np.where(covers_most, iou, 0.0).sum())
    n_matched = len(matched_ious)
    counted = object_scores_from_counts(n_matched, n_true, n_predicted, seg_sum)
    return DetectionScores(
        precision=n_matched / n_predicted if n_predicted else 1.0,
        recall=n_matched / n_true if n_true else 1.0,
        f1=float(counted["F1"]),
        mean_matched_iou=float(matched_ious.mean()) if n_matched else 0.0,
        n_true=n_true,
        n_predicted=n_predicted,
        n_matched=n_matched,
        ap=float(counted["AP"]),
        seg=float(counted["SEG"]),
    )
