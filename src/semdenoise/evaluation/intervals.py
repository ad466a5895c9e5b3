"""95 % intervals for every reported score, and which differences between methods are real.

A handful of test images gives a mean that moves a lot with the images drawn, so every
summary number carries a percentile bootstrap interval over test images: images are
resampled with replacement, and each score is recomputed the way the summary computes
it (a mean over images for PSNR/SSIM/IoU/Dice; F1 and AP from object counts pooled
over the resampled images, SEG as the mean over their true objects). Differences
between two methods are bootstrapped *paired*, on the same resampled images, so what
the images share (a hard image is hard for every method) cancels out. The generator
is seeded: the same evaluation gives the same intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from semdenoise.evaluation.metrics import object_scores_from_counts

RESAMPLES = 2000
SEED = 20260
LEVEL = 0.95

# The scores with intervals: those averaged over images, and those computed from object
# counts summed over images (score -> (prefix of its per-image counts, what it is)).
MEAN_SCORES = ("PSNR", "SSIM", "IoU", "Dice", "own IoU")
POOLED_SCORES = {
    f"{prefix}{kind}": (prefix, kind) for prefix in ("", "own ") for kind in ("F1", "AP", "SEG")
}
HIGHER_IS_BETTER = (
    "PSNR",
    "SSIM",
    "IoU",
    "F1",
    "AP",
    "SEG",
    "own IoU",
    "own F1",
    "own AP",
    "own SEG",
)
# the per-image count each pooled score needs (rows written before SEG lack "_seg_sum")
_NEEDS = {"F1": "_matched", "AP": "_matched", "SEG": "_seg_sum"}


def _resampled_indices(n_images: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_images, size=(resamples, n_images))


def _score_samples(rows: Sequence[dict[str, Any]], score: str, draws: np.ndarray) -> np.ndarray:
    """The score recomputed on each resample of the images (rows in image order)."""
    if score in POOLED_SCORES:
        prefix, kind = POOLED_SCORES[score]

        def summed(count: str) -> np.ndarray:
            values = np.array([r.get(f"{prefix}{count}", 0.0) for r in rows], dtype=np.float64)
            return values[draws].sum(axis=1)

        counts = (summed(c) for c in ("_matched", "_true", "_predicted", "_seg_sum"))
        return object_scores_from_counts(*counts)[kind]
    values = np.array([r[score] for r in rows], dtype=np.float64)
    return values[draws].mean(axis=1)


def _interval(samples: np.ndarray) -> list[float]:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return [float(low), float(high)]


def _rows_by_method(per_image: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in per_image:
        rows.setdefault(row["method"], []).append(row)
    for method_rows in rows.values():
        method_rows.sort(key=lambda r: r["image"])
    return rows


def _scores_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    first = rows[0]
    present = [s for s in MEAN_SCORES if s in first]
    present += [s for s, (prefix, kind) in POOLED_SCORES.items() if prefix + _NEEDS[kind] in first]
    return present


def add_intervals(
    summary: list[dict[str, Any]],
    per_image: Sequence[dict[str, Any]],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> None:
    """Add ``"<score> CI"`` = [low, high] to each summary row, in place."""
    by_method = _rows_by_method(per_image)
    if not by_method:
        return
    n_images = len(next(iter(by_method.values())))
    draws = _resampled_indices(n_images, resamples, seed)
    for entry in summary:
        rows = by_method.get(entry["method"])
        if not rows:
            continue
        for score in _scores_of(rows):
            entry[f"{score} CI"] = _interval(_score_samples(rows, score, draws))


def separable_from_best(
    summary: Sequence[dict[str, Any]],
    per_image: Sequence[dict[str, Any]],
    *,
    scores: Sequence[str] = HIGHER_IS_BETTER,
    exclude: Sequence[str] = ("clean",),
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> list[dict[str, Any]]:
    """For each score, the best method and, for every other one, whether the paired 95 %
    interval of its difference from the best excludes zero (a real difference) or not.

    Returns rows ``{"score", "best", "method", "difference", "interval", "real"}``.
    """
    by_method = {
        name: rows for name, rows in _rows_by_method(per_image).items() if name not in exclude
    }
    if not by_method:
        return []
    n_images = len(next(iter(by_method.values())))
    draws = _resampled_indices(n_images, resamples, seed)
    means = {r["method"]: r for r in summary if r["method"] in by_method}
    result = []
    for score in scores:
        candidates = [m for m, row in means.items() if isinstance(row.get(score), float)]
        if len(candidates) < 2:
            continue
        best = max(candidates, key=lambda m: means[m][score])
        best_samples = _score_samples(by_method[best], score, draws)
        for method in candidates:
            if method == best:
                continue
            difference = best_samples - _score_samples(by_method[method], score, draws)
            interval = _interval(difference)
            result.append(
                {
                    "score": score,
                    "best": best,
                    "method": method,
                    "difference": float(means[best][score] - means[method][score]),
                    "interval": interval,
                    "real": interval[0] > 0,
                }
            )
    return result


def with_interval(value: Any, interval: Sequence[float] | None) -> str:
    """``0.742 (0.70–0.78)``: a value and its interval, as a table cell."""
    if not isinstance(value, float):
        return "" if value is None else str(value)
    digits = 2 if abs(value) >= 10 else 3
    if interval is None:
        return f"{value:.{digits}f}"
    low, high = interval
    return f"{value:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"
