"""Denoise an array with a trained model: the notebook entry point."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from semdenoise.errors import InputError
from semdenoise.io.checks import check_image, check_min_size
from semdenoise.io.model_file import load_model
from semdenoise.models.noise_model import NoiseModel, posterior_mean, predicted_variance
from semdenoise.models.trained import TrainedModel
from semdenoise.predict.blind import blind_prediction
from semdenoise.predict.noise_level import estimate_noise_sigma
from semdenoise.predict.tiling import predict_tiled, predict_tta

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
    posterior: bool = True,
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

    A model that learned its noise model (``train_n2v(noise=NoiseConfig(model=...))``)
    blends per pixel instead, by the posterior mean (models/noise_model.py): its own
    noise model by default, Gaussian noise of ``noise_sigma`` when one is given.
    ``posterior=False`` returns its blind-spot prediction alone.
    """
    model = as_model(model)
    net = model.denoiser
    if net is None:
        raise InputError(f"model of kind {model.kind!r} holds no denoiser")
    image = check_image(image, source=source)
    check_min_size(image, net.config.min_size, source=source)
    device = resolve_device(device)
    noise_model = learned_noise_model(model)
    fixed_alpha = None if noise_model is not None else observed_pixel_weight(model, noise_sigma)
    if net.config.dims == 3:  # the whole volume through 3-D tiles, then the same blend
        if image.ndim != 3:
            raise InputError(
                f"{source}: 2-D image of shape {image.shape}, this 3-D model needs a "
                "(Z, Y, X) volume"
            )
        predict = predict_tta if tta else predict_tiled
        predicted = predict(
            net,
            model.normalization.normalize(image),
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
    tiling = {"tile_size": tile_size, "batch_size": batch_size, "device": device}
    for z, plane in enumerate(planes):
        normalized = model.normalization.normalize(plane)
        transforms = range(8) if tta else range(1)
        result = None
        for k in transforms:
            view = np.ascontiguousarray(_symmetry(normalized, k))
            if noise_model is not None and posterior:  # blind, for the posterior
                predicted = blind_prediction(net, view, radius=_masking_radius(model), **tiling)
            else:
                predicted = predict_tiled(net, view, **tiling)
            if predicted.ndim == 3:  # mean and variance: each channel back in place
                predicted = np.stack([_symmetry_inverse(c, k) for c in predicted])
            else:
                predicted = _symmetry_inverse(predicted, k)
            result = predicted if result is None else result + predicted
        result = result / len(transforms)
        if result.ndim == 3:  # mean and variance channels
            result = (
                result[0]
                if not posterior
                else _posterior(model, noise_model, plane, normalized, result, noise_sigma)
            )
        with np.errstate(over="ignore", invalid="ignore"):
            denoised[z] = model.normalization.denormalize(result)
        check_network_output(denoised[z], model, source=source)
        if noise_model is None:
            alpha = (
                fixed_alpha if fixed_alpha is not None else _estimated_center_weight(model, plane)
            )
            if alpha > 0:
                denoised[z] = (1.0 - alpha) * denoised[z] + alpha * plane
        if len(planes) > 1:
            logger.info("denoised slice %d/%d", z + 1, len(planes))
    return denoised if image.ndim == 3 else denoised[0]


def _masking_radius(model: TrainedModel) -> int:
    return int(model.training.get("masking", {}).get("radius", 2))


def learned_noise_model(model: TrainedModel) -> NoiseModel | None:
    """The noise model a denoiser learned with it, if it has a variance head."""
    values = model.training.get("noise_model")
    net = model.denoiser
    if values is None or net is None or net.config.out_channels == net.config.in_channels:
        return None
    return NoiseModel.from_dict(values)


def _posterior(
    model: TrainedModel,
    noise_model: NoiseModel,
    plane: np.ndarray,
    normalized: np.ndarray,
    predicted: np.ndarray,
    noise_sigma: float | str | None,
) -> np.ndarray:
    """The posterior mean of one normalised plane from the network's mean and variance
    channels: under the learned noise model, or Gaussian noise of a given sigma."""
    mean, variance = predicted[0], predicted_variance(predicted[1])
    if noise_sigma is None:
        noise_variance = noise_model.variance(mean)
    else:
        if noise_sigma == "auto":
            sigma = estimate_noise_sigma(plane)
            logger.info("estimated noise sigma %.3g", sigma)
        else:
            sigma = _as_sigma(noise_sigma)
            if not sigma >= 0:
                raise InputError(f"noise sigma must be a number >= 0, got {sigma}")
        noise_variance = np.float32((sigma / model.normalization.std) ** 2)
    return posterior_mean(normalized, mean, variance, noise_variance)


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
