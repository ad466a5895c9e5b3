"""Prediction: tiled, blended, batched; slice by slice for stacks."""

from semdenoise.predict.denoise import denoise
from semdenoise.predict.segment import segment
from semdenoise.predict.tiling import predict_tiled

__all__ = ["denoise", "predict_tiled", "segment"]
