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
from semdenoise.predict.noise_level import estimate_noise_sigma
from semdenoise.predict.tiling import predict_tiled
from semdenoise.predict.tiling_3d import predict_volume

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
    noise_sigma: float | str | None = None,
    source: str = "image",
) -> np.ndarray:
    """Denoise a (Y, X) image or a (Z, Y, X) stack slice by slice (a 3-D model: the
    (Z, Y, X) volume as a whole, in overlapping 3-D windows).

    Normalises with the model's stored statistics and returns float32 in the input's
    intensity scale, same shape. ``tta`` averages the predictions of the 8
    rotations/flips (the training augmentations): less residual noise, 8x the time.

    ``noise_sigma`` (Gaussian noise standard deviation in the input's units, when known)
    gives back what a blind-spot network gives up: it never sees a pixel's own value.
    The prediction is blended with the observed pixel, weight
    alpha = (M - sigma^2) / M, where M is the model's mean squared difference from its
    noisy training images (stored at training time); this minimises the expected
    squared error when noise and prediction error are independent. ``"auto"``
    estimates sigma from each slice itself (:func:`estimate_noise_sigma`); on real data
    that also counts the signal's own fine grain as noise, so it blends a little less.
    """
    model = as_model(model)
    net = model.denoiser
    if net is None:
        raise InputError(f"model of kind {model.kind!r} holds no denoiser")
    image = check_image(image, source=source)
    check_min_size(image, net.config.min_size, source=source)
    device = resolve_device(device)
    fixed_alpha = observed_pixel_weight(model, noise_sigma)
    if net.config.dims == 3:  # the whole volume through 3-D tiles, then the same blend
        if image.ndim != 3:
            raise InputError(
                f"{source}: 2-D image of shape {image.shape}, this 3-D model needs a "
                "(Z, Y, X) volume"
            )
        predicted = predict_volume(
            net,
            model.normalization.normalize(image),
            tta=tta,
            tile_size=tile_size,
            batch_size=batch_size,
            device=device,
        )
        with np.errstate(over="ignore", invalid="ignore"):
            denoised = model.normalization.denormalize(predicted)
        check_network_output(denoised, model, source=source)
        for z, plane in enumerate(image):
            alpha = (
                fixed_alpha if fixed_alpha is not None else _estimated_center_weight(model, plane)
            )
            if alpha > 0:
                denoised[z] = (1.0 - alpha) * denoised[z] + alpha * plane
        return denoised
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
        with np.errstate(over="ignore", invalid="ignore"):
            denoised[z] = model.normalization.denormalize(result / len(transforms))
        check_network_output(denoised[z], model, source=source)
        alpha = fixed_alpha if fixed_alpha is not None else _estimated_center_weight(model, plane)
        if alpha > 0:
            denoised[z] = (1.0 - alpha) * denoised[z] + alpha * plane
        if len(planes) > 1:
            logger.info("denoised slice %d/%d", z + 1, len(planes))
    return denoised if image.ndim == 3 else denoised[0]


def check_network_output(values: np.ndarray, model: TrainedModel, *, source: str) -> None:
    """Refuse a prediction that overflowed: the input lies far outside the training range."""
    if not np.isfinite(values).all():
        raise InputError(
            f"{source}: intensities far outside the model's range (training mean "
            f"{model.normalization.mean:.4g}, std {model.normalization.std:.4g}) "
            "overflow the network"
        )


def _symmetry(image: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the square's 8 symmetries: rotate by k % 4 quarter turns, then flip."""
    rotated = np.rot90(image, k % 4)
    return rotated[:, ::-1] if k >= 4 else rotated


def _symmetry_inverse(image: np.ndarray, k: int) -> np.ndarray:
    unflipped = image[:, ::-1] if k >= 4 else image
    return np.rot90(unflipped, -(k % 4))


def observed_pixel_weight(model: TrainedModel, noise_sigma: float | str | None) -> float | None:
    """The observed pixel's blend weight: 0 without a sigma, fixed for a given one,
    ``None`` for "auto" (estimated per slice). Refuses, before any work, a model that
    stores no blind-spot error."""
    if noise_sigma is None:
        return 0.0
    if noise_sigma == "auto":
        _blind_spot_mse(model)
        return None
    return center_weight(model, _as_sigma(noise_sigma))


def _as_sigma(noise_sigma: float | str) -> float:
    try:
        return float(noise_sigma)
    except (TypeError, ValueError):
        raise InputError(
            f"noise sigma must be a number >= 0 or 'auto', got {noise_sigma!r}"
        ) from None


def _estimated_center_weight(model: TrainedModel, plane: np.ndarray) -> float:
    noise_sigma = estimate_noise_sigma(plane)
    logger.info("estimated noise sigma %.3g", noise_sigma)
    return center_weight(model, noise_sigma)


def _blind_spot_mse(model: TrainedModel) -> float:
    mse = model.training.get("blind_spot_mse")
    if mse is None:
        raise InputError(
            f"model of kind {model.kind!r} has no stored blind-spot error; --noise-sigma "
            "needs an N2V or joint model trained by this version"
        )
    return mse


def center_weight(model: TrainedModel, noise_sigma: float) -> float:
    """Weight of the observed pixel when blending with the blind-spot prediction."""
    if not noise_sigma >= 0:
        raise InputError(f"noise sigma must be a number >= 0, got {noise_sigma}")
    mse = _blind_spot_mse(model)
    alpha = min(1.0, max(0.0, (mse - noise_sigma**2) / mse))
    logger.info("blending %.3f of the observed pixel (noise sigma %g)", alpha, noise_sigma)
    return alpha
