"""Prediction: tiled, blended, batched; slice by slice for stacks; chunked on Dask."""

from semdenoise.predict.chunked import denoise_zarr
from semdenoise.predict.denoise import denoise
from semdenoise.predict.segment import segment
from semdenoise.predict.tiling import predict_tiled

__all__ = ["denoise", "denoise_zarr", "predict_tiled", "segment"]
