"""Evaluate any set of denoisers on the same noisy images: quality and what it does downstream.

For every method and image: PSNR and SSIM against the clean image (when there is
one); foreground IoU and Dice of a fixed segmenter applied to the method's output;
object detection from that segmentation (objects matched one to one at IoU >= 0.5:
precision, recall, F1, mean matched IoU, and DenoiSeg's AP = TP / (TP + FP + FN));
the Cell Tracking Challenge's SEG (mean over true objects of the IoU with the predicted
object covering more than half of it); and for a supervised joint model the same
read-outs of its own segmenter. A segmenter's objects are its instance labels when it
gives them, else its mask's connected components
(:func:`semdenoise.models.targets.objects_of`).
Rows for the noisy input and, for the segmentation read-outs, the clean image (the
segmenter's ceiling) come first. Summary rows average PSNR/SSIM/IoU/Dice over images;
detection counts are pooled over images before precision, recall, F1 and AP are
computed (micro average), and SEG is the mean over the true objects of all images, so
images with few objects do not swing the score. Each summary score carries a 95 %
bootstrap interval over the test images (:mod:`semdenoise.evaluation.intervals`).
Timings are kept apart from the scores: they depend on the machine's load, the scores
must not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semdenoise.baselines.methods import Method
from semdenoise.evaluation.intervals import add_intervals
from semdenoise.evaluation.metrics import (
    detection_scores,
    dice,
    foreground_iou,
    object_scores_from_counts,
    psnr,
    ssim,
)
from semdenoise.evaluation.no_reference import no_reference_checks, unchanged
from semdenoise.evaluation.segmenters import Segmenter
from semdenoise.io.axes import stack_axes

logger = logging.getLogger(__name__)

NOISY, CLEAN = "noisy", "clean"


@dataclass
class Evaluation:
    """Every number of one evaluation, plus the images the figures need."""

    summary: list[dict[str, Any]]
    per_image: list[dict[str, Any]]
    outputs: dict[str, np.ndarray]  # method -> denoised stack (clean/noisy included)
    segmentations: dict[str, np.ndarray]  # method -> fixed segmenter's masks
    own_segmentations: dict[str, np.ndarray] = field(default_factory=dict)
    data_range: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    labels: np.ndarray | None = None  # the target masks, for figures
    seconds_per_megapixel: dict[str, float] = field(default_factory=dict)  # load-dependent
    no_reference: list[dict[str, Any]] = field(default_factory=list)  # mean row per method

    def row(self, method: str) -> dict[str, Any]:
        return next(r for r in self.summary if r["method"] == method)


def _stack(images: np.ndarray | None) -> np.ndarray | None:
    if images is None:
        return None
    images = np.asarray(images)
    return images[None] if images.ndim == 2 else images


def _check_shapes(noisy: np.ndarray, **others: np.ndarray | None) -> None:
    for name, array in others.items():
        if array is not None and array.shape != noisy.shape:
            raise ValueError(f"{name} {array.shape} does not match the noisy images {noisy.shape}")


def _segmentation_scores(truth, instances, mask, prefix: str = "") -> dict[str, Any]:
    scores = detection_scores(instances if instances is not None else truth, mask)
    return {
        f"{prefix}IoU": foreground_iou(truth, mask),
        f"{prefix}Dice": dice(truth, mask),
        f"{prefix}_matched": scores.n_matched,
        f"{prefix}_true": scores.n_true,
        f"{prefix}_predicted": scores.n_predicted,
        f"{prefix}_matched_iou_sum": scores.mean_matched_iou * scores.n_matched,
        f"{prefix}_seg_sum": scores.seg * scores.n_true,
        f"{prefix}F1": scores.f1,
        f"{prefix}AP": scores.ap,
        f"{prefix}SEG": scores.seg,
    }


def _pooled(rows: Sequence[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """Mean IoU/Dice over images; precision/recall/F1/AP/SEG from counts pooled over images."""
    matched = sum(r[f"{prefix}_matched"] for r in rows)
    true = sum(r[f"{prefix}_true"] for r in rows)
    predicted = sum(r[f"{prefix}_predicted"] for r in rows)
    iou_sum = sum(r[f"{prefix}_matched_iou_sum"] for r in rows)
    counted = object_scores_from_counts(
        matched, true, predicted, sum(r[f"{prefix}_seg_sum"] for r in rows)
    )
    return {
        f"{prefix}IoU": float(np.mean([r[f"{prefix}IoU"] for r in rows])),
        f"{prefix}Dice": float(np.mean([r[f"{prefix}Dice"] for r in rows])),
        f"{prefix}precision": matched / predicted if predicted else 1.0,
        f"{prefix}recall": matched / true if true else 1.0,
        f"{prefix}F1": float(counted["F1"]),
        f"{prefix}AP": float(counted["AP"]),
        f"{prefix}SEG": float(counted["SEG"]),
        f"{prefix}matched IoU": iou_sum / matched if matched else 0.0,
        f"{prefix}objects": f"{matched}/{true} ({predicted} found)",
    }


def evaluate(
    noisy: np.ndarray,
    methods: Sequence[Method],
    *,
    clean: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    instances: np.ndarray | None = None,
    segmenter: Segmenter | None = None,
    data_range: float | None = None,
    blind_spot_repeats: int = 1,
) -> Evaluation:
    """Run every method on every noisy image and score it.

    ``noisy``, ``clean``, ``labels`` (binary target masks) and ``instances`` (instance
    labels; default: the labels' connected components) are 2-D images or stacks of the
    same shape. ``data_range`` for PSNR/SSIM defaults to the clean images' range
    (max - min), stated in the result, never a guess from the dtype. Without
    ``segmenter`` or ``labels`` only PSNR/SSIM are computed. The checks that need no
    clean image (:mod:`semdenoise.evaluation.no_reference`) are computed for every
    method and for the input as is (``blind_spot_repeats`` maskings per image).
    """
    noisy = _stack(noisy).astype(np.float32)
    clean, labels, instances = (_stack(a) for a in (clean, labels, instances))
    _check_shapes(noisy, clean=clean, labels=labels, instances=instances)
    names = [m.name for m in methods]
    if len(set(names)) != len(names) or {NOISY, CLEAN} & set(names):
        raise ValueError(f"method names must be unique and not 'noisy'/'clean', got {names}")
    if clean is not None and data_range is None:
        data_range = float(clean.max() - clean.min())
    scored = labels is not None and segmenter is not None
    outputs: dict[str, np.ndarray] = {NOISY: noisy}
    if clean is not None:
        outputs = {CLEAN: clean.astype(np.float32), **outputs}
    seconds: dict[str, float] = {}
    for index, method in enumerate(methods, 1):
        logger.info("[%d/%d] %s on %d image(s)", index, len(methods), method.name, len(noisy))
        started = time.perf_counter()
        outputs[method.name] = np.stack([method(image) for image in noisy])
        seconds[method.name] = time.perf_counter() - started
    checks = _no_reference(noisy, methods, outputs, blind_spot_repeats)
    segmentations: dict[str, np.ndarray] = {}
    own: dict[str, np.ndarray] = {}
    if scored:
        logger.info("segmenting every output with the fixed segmenter")
        segmentations = {
            name: np.stack([segmenter(image) for image in images])
            for name, images in outputs.items()
        }
        for method in methods:
            if method.has_segmenter and method.model.training.get("mode") == "supervised":
                from semdenoise.predict import segment

                own[method.name] = segment(
                    method.model, noisy, axes=stack_axes(noisy.ndim), source=method.name
                )
    per_image: list[dict[str, Any]] = []
    for name, images in outputs.items():
        for i, image in enumerate(images):
            row: dict[str, Any] = {"method": name, "image": i}
            if clean is not None and name != CLEAN:
                row["PSNR"] = psnr(clean[i], image, data_range=data_range)
                row["SSIM"] = ssim(clean[i], image, data_range=data_range)
            if scored:
                row.update(
                    _segmentation_scores(labels[i], _at(instances, i), segmentations[name][i])
                )
            if name in own:
                row.update(_segmentation_scores(labels[i], _at(instances, i), own[name][i], "own "))
            per_image.append(row)
    summary = []
    megapixels = noisy.size / 1e6
    for name in outputs:
        rows = [r for r in per_image if r["method"] == name]
        entry: dict[str, Any] = {"method": name}
        if clean is not None and name != CLEAN:
            entry["PSNR"] = float(np.mean([r["PSNR"] for r in rows]))
            entry["SSIM"] = float(np.mean([r["SSIM"] for r in rows]))
        if scored:
            entry.update(_pooled(rows))
        if name in own:
            entry.update(_pooled(rows, "own "))
        summary.append(entry)
    add_intervals(summary, per_image)
    details = {m.name: m.details for m in methods if m.details}
    timing = {name: s / megapixels for name, s in seconds.items()}
    return Evaluation(
        summary, per_image, outputs, segmentations, own, data_range, details, labels, timing, checks
    )


def _no_reference(
    noisy: np.ndarray, methods: Sequence[Method], outputs: dict[str, np.ndarray], repeats: int
) -> list[dict[str, Any]]:
    """The mean no-reference row of the input as is and of every method, in that order.

    Methods run again on masked copies for the blind-spot loss, through their bare
    function so their recorded details stay one entry per test image."""
    logger.info("checks without clean images (blind-spot loss: %d masking(s))", repeats)
    rows = []
    for name, function, denoised in [(NOISY, unchanged, noisy)] + [
        (m.name, _bare(m), outputs[m.name]) for m in methods
    ]:
        summary = no_reference_checks(
            noisy, function, name=name, denoised=denoised, repeats=repeats
        )[-1]
        rows.append({k: v for k, v in summary.items() if k != "image"})
    return rows


def _bare(method: Method):
    return lambda image: method.function(image)[0]


def _at(stack: np.ndarray | None, index: int) -> np.ndarray | None:
    return None if stack is None else stack[index]
