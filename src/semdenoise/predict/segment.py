"""Segment an array with a model holding a segmenter (alone, or after its denoiser)."""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy.special import expit

from semdenoise.errors import InputError
from semdenoise.io.checks import check_image, check_min_size
from semdenoise.models.trained import TrainedModel
from semdenoise.predict.denoise import as_model, check_network_output, resolve_device
from semdenoise.predict.tiling import predict_tiled


def segment(
    model: TrainedModel | str | os.PathLike,
    image: np.ndarray,
    *,
    probabilities: bool = False,
    threshold: float = 0.5,
    tile_size: int = 1024,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    source: str = "image",
) -> np.ndarray:
    """Foreground of a (Y, X) image or (Z, Y, X) stack: uint8 {0, 1}, or float32
    probabilities. A joint model segments its own denoised image, as it was trained to.
    """
    model = as_model(model)
    segmenter = model.segmenter
    if segmenter is None:
        raise InputError(f"model of kind {model.kind!r} holds no segmenter")
    image = check_image(image, source=source)
    check_min_size(image, segmenter.config.min_size, source=source)
    device = resolve_device(device)
    cascade = model.kind == "joint" and model.denoiser is not None
    planes = image if image.ndim == 3 else image[None]
    result = np.empty(planes.shape, dtype=np.float32 if probabilities else np.uint8)
    for z, plane in enumerate(planes):
        normalized = model.normalization.normalize(plane)
        options = {"tile_size": tile_size, "batch_size": batch_size, "device": device}
        if cascade:
            normalized = predict_tiled(model.denoiser, normalized, **options)
        logits = predict_tiled(segmenter, normalized, **options)
        check_network_output(logits, model, source=source)
        probability = expit(logits)  # no overflow warning for very confident pixels
        result[z] = probability if probabilities else probability >= threshold
    return result if image.ndim == 3 else result[0]
