"""Evaluate denoisers against each other and baselines; write the report."""

from semdenoise.evaluation.evaluate import Evaluation, evaluate
from semdenoise.evaluation.report import write_evaluation
from semdenoise.evaluation.segmenters import model_segmenter, otsu_segmenter

__all__ = ["Evaluation", "evaluate", "model_segmenter", "otsu_segmenter", "write_evaluation"]
