"""Evaluate denoisers against each other and baselines; write the report."""

from semdenoise.evaluation.evaluate import Evaluation, evaluate
from semdenoise.evaluation.files import evaluate_files
from semdenoise.evaluation.no_reference import (
    NO_REFERENCE_COLUMNS,
    blind_spot_loss,
    no_reference_checks,
    residual_autocorrelation,
    residual_mean,
    residual_output_correlation,
    unchanged,
)
from semdenoise.evaluation.report import write_evaluation
from semdenoise.evaluation.segmenters import model_segmenter, otsu_segmenter

__all__ = [
    "NO_REFERENCE_COLUMNS",
    "Evaluation",
    "blind_spot_loss",
    "evaluate",
    "evaluate_files",
    "model_segmenter",
    "no_reference_checks",
    "otsu_segmenter",
    "residual_autocorrelation",
    "residual_mean",
    "residual_output_correlation",
    "unchanged",
    "write_evaluation",
]
