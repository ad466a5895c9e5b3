"""Denoise an array with a trained model: the notebook entry point."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from semdenoise.errors import InputError
from semdenoise.io.checks import check_image, check_min_size
from semdenoise.io.model_file import load_model
from semdenoise.models.trained import TrainedModel
from semdenoise.predict.tiling import predict_tiled

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" picks the GPU when there is one."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "gpu":
        return torch.device("cuda")
    return torch.device(device)


def as_model(model: TrainedModel | str | os.PathLike) -> TrainedModel:
    """Accept a loaded model or a path to a model file."""
    return model if isinstance(model, TrainedModel) else load_model(model)


def denoise(
    model: TrainedModel | str | os.PathLike,
    image: np.ndarray,
    *,
    tile_size: int = 1024,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    tta: bool = False,
    source: str = "image",
) -> np.ndarray:
    """Denoise a (Y, X) image or a (Z, Y, X) stack slice by slice.

    Normalises with the model's stored statistics and returns float32 in the input's
    intensity scale, same shape. ``tta`` averages the predictions of the 8
    rotations/flips (the training augmentations): less residual noise, 8x the time.
    """
    model = as_model(model)
    net = model.denoiser
    if net is None:
        raise InputError(f"model of kind {model.kind!r} holds no denoiser")
    image = check_image(image, source=source)
    check_min_size(image, net.config.min_size, source=source)
    device = resolve_device(device)
    planes = image if image.ndim == 3 else image[None]
    denoised = np.empty(planes.shape, dtype=np.float32)
    for z, plane in enumerate(planes):
        normalized = model.normalization.normalize(plane)
        transforms = range(8) if tta else range(1)
        result = np.zeros_like(normalized)
        for k in transforms:
            view = _symmetry(normalized, k)
            predicted = predict_tiled(
                net,
                np.ascontiguousarray(view),
                tile_size=tile_size,
                batch_size=batch_size,
                device=device,
            )
            result += _symmetry_inverse(predicted, k)
        denoised[z] = model.normalization.denormalize(result / len(transforms))
        if len(planes) > 1:
            logger.info("denoised slice %d/%d", z + 1, len(planes))
    return denoised if image.ndim == 3 else denoised[0]


def _symmetry(image: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the square's 8 symmetries: rotate by k % 4 quarter turns, then flip."""
    rotated = np.rot90(image, k % 4)
    return rotated[:, ::-1] if k >= 4 else rotated


def _symmetry_inverse(image: np.ndarray, k: int) -> np.ndarray:
    unflipped = image[:, ::-1] if k >= 4 else image
    return np.rot90(unflipped, -(k % 4))
