"""Denoise an array with a trained model: the notebook entry point."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch

from semdenoise.config import DEFAULT_TILE_SIZE
from semdenoise.errors import InputError
from semdenoise.io.axes import Layout
from semdenoise.io.checks import check_image, check_min_size
from semdenoise.io.model_file import load_model
from semdenoise.models.noise_model import (
    NoiseModel,
    ResidualProfile,
    posterior_mean,
    predicted_variance,
)
from semdenoise.models.trained import TrainedModel
from semdenoise.predict.blind import blind_prediction
from semdenoise.predict.inference import InferenceNet
from semdenoise.predict.noise_level import estimate_noise_sigma
from semdenoise.predict.tiling import predict_tiled, predict_tta, prepared, symmetry_context

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


def model_layout(
    model: TrainedModel, image: np.ndarray, axes: str | None, *, source: str
) -> Layout:
    """The axes of ``image`` for ``model``: as declared, else the axes the model was
    trained with when the dimensions agree, else the defaults (io/axes.py); its channels
    must be the model's."""
    net = model.denoiser if model.denoiser is not None else model.segmenter
    channels, dims = net.config.in_channels, net.config.dims
    stored = model.training.get("axes")
    if axes is None and stored is not None and len(stored) == np.ndim(image):
        axes = stored
    if axes is None and channels > 1:
        raise InputError(
            f"{source}: this model takes {channels} channels; declare the image's axes "
            f"with --axes (it was trained on {stored or 'images'} with channels C)"
        )
    layout = Layout.of(image, axes, volume=dims == 3, source=source)
    if layout.channels != channels:
        raise InputError(
            f"{source}: {layout.channels} channel(s) (axes {layout.axes}), this model "
            f"takes {channels}"
        )
    if dims == 3 and "Z" not in layout.axes:
        raise InputError(
            f"{source}: {len(layout.shape)}-D image of shape {layout.shape} (axes "
            f"{layout.axes}), this 3-D model needs a (Z, Y, X) volume"
        )
    return layout


def denoise(
    model: TrainedModel | str | os.PathLike,
    image: np.ndarray,
    *,
    axes: str | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    tta: bool = False,
    noise_sigma: float | str | None = None,
    posterior: bool = True,
    source: str = "image",
    context: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Denoise a (Y, X) image or a (Z, Y, X) stack slice by slice (a 3-D model: the
    (Z, Y, X) volume as a whole, in overlapping 3-D windows).

    ``axes`` declares other layouts ("CYX", "SCZYX", ...; io/axes.py); without it a
    model trained with declared axes assumes them again when the dimensions agree. A
    model trained on channels denoises them (together or separately, as trained).
    Normalises with the model's stored statistics and returns float32 in the input's
    intensity scale, same shape and axes. ``tta`` averages the predictions of the 8
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

    ``context``, per axis of ``image`` (before, after): pixels at each end that are
    context only, such as a chunk's halo read from its neighbours (Z, Y and X; the
    network's axes). They inform the prediction but are neither padded again nor
    returned: the result is the image without them (:func:`predict_tiled`).
    """
    model = as_model(model)
    net = model.denoiser
    if net is None:
        raise InputError(f"model of kind {model.kind!r} holds no denoiser")
    image = check_image(image, source=source, axes=axes)
    layout = model_layout(model, image, axes, source=source)
    data = layout.canonical(image)  # (S, C, Z, Y, X)
    check_min_size(data, net.config.min_size, source=source)
    device = resolve_device(device)
    noise_models = learned_noise_model(model)
    fixed_alpha = None if noise_models is not None else observed_pixel_weight(model, noise_sigma)
    # (before, after) per axis of data; a 2-D network's Z context is cut off here
    given = _canonical_context(layout, context)
    if net.config.dims == 2:
        (z_before, z_after), given[2] = given[2], (0, 0)
        data = data[:, :, z_before : data.shape[2] - z_after]
    core = tuple(
        slice(before, size - after) for (before, after), size in zip(given, data.shape, strict=True)
    )
    denoised = np.empty(data[core].shape, dtype=np.float32)
    runner = prepared(net, device)  # BatchNorm folded once, for every slice and pass
    tiling = {"tile_size": tile_size, "batch_size": batch_size, "device": device}
    planes = data.shape[0] * data.shape[2]
    for s in range(data.shape[0]):
        if net.config.dims == 3:  # the whole volume through 3-D tiles, then the same blend
            volume = data[s]
            predict = predict_tta if tta else predict_tiled
            predicted = predict(
                runner,
                _network_input(model.normalization.normalize(volume)),
                context=given[2:],
                **tiling,
            )
            observed = volume[core[1:]]
            with np.errstate(over="ignore", invalid="ignore"):
                result = model.normalization.denormalize(predicted.reshape(observed.shape))
            check_network_output(result, model, source=source)
            for z in range(observed.shape[1]):
                result[:, z] = _blend(
                    model,
                    result[:, z],
                    observed[:, z],
                    fixed_alpha,
                    estimate_from=volume[:, core[2].start + z],
                )
            denoised[s] = result
            continue
        for z in range(data.shape[2]):
            plane = data[s, :, z]  # (C, Y, X)
            denoised[s, :, z] = _denoise_plane(
                model,
                runner,
                plane,
                noise_models,
                fixed_alpha,
                tta,
                posterior,
                noise_sigma,
                {**tiling, "context": given[3:]},
                source=source,
            )
            if planes > 1:
                logger.info("denoised slice %d/%d", s * data.shape[2] + z + 1, planes)
    if context is not None:  # the result's layout: the image without its context
        shape = tuple(n - b - a for n, (b, a) in zip(layout.shape, context, strict=True))
        layout = Layout(layout.axes, shape)
    return layout.restore(denoised)


def _canonical_context(
    layout: Layout, context: Sequence[tuple[int, int]] | None
) -> list[tuple[int, int]]:
    """``context`` (per axis of the image) per axis of (S, C, Z, Y, X); only the
    network's spatial axes (and Z of a 2-D network's stack) may have any."""
    given = {a: (0, 0) for a in "SCZYX"}
    if context is None:
        return list(given.values())
    if len(context) != len(layout.axes):
        raise ValueError(f"context {context} for an image of axes {layout.axes}")
    for axis, (before, after) in zip(layout.axes, context, strict=True):
        if axis not in "ZYX" and (before or after):
            raise ValueError(f"context along axis {axis}: only Z, Y and X may have any")
        given[axis] = (int(before), int(after))
    return list(given.values())


def _network_input(image: np.ndarray) -> np.ndarray:
    """A normalised (C, ...) image as the tilers take it: without C for one channel."""
    return image[0] if image.shape[0] == 1 else image


def _denoise_plane(
    model: TrainedModel,
    net: InferenceNet,
    plane: np.ndarray,
    noise_models: list[NoiseModel] | None,
    fixed_alpha: np.ndarray | None,
    tta: bool,
    posterior: bool,
    noise_sigma: float | str | None,
    tiling: dict,
    *,
    source: str,
) -> np.ndarray:
    """One (C, Y, X) plane denoised, in the input's units; without its context
    (``tiling["context"]``, (before, after) in Y and X), if it has any."""
    tiling = dict(tiling)  # the caller's options stay as they are
    (y_before, y_after), (x_before, x_after) = context = tiling.pop("context")
    core = (slice(None), slice(y_before, plane.shape[1] - y_after))
    core += (slice(x_before, plane.shape[2] - x_after),)
    normalized = model.normalization.normalize(plane)
    transforms = range(8) if tta else range(1)
    result = None
    for k in transforms:
        view = np.ascontiguousarray(_symmetry(normalized, k))
        seen = symmetry_context(context, k)
        if noise_models is not None and posterior:  # blind, for the posterior
            predicted = blind_prediction(
                net, view, radius=masking_radius(model), context=seen, **tiling
            )
        else:
            predicted = predict_tiled(net, _network_input(view), context=seen, **tiling)
        core_shape = _symmetry(normalized[core], k).shape[1:]
        predicted = _symmetry_inverse(predicted.reshape(-1, *core_shape), k)
        result = predicted if result is None else result + predicted
    result = result / len(transforms)  # (outputs, Y, X): means, then any variances
    channels = len(plane)
    observed, normalized = plane[core], normalized[core]  # noise "auto": the whole plane
    if len(result) > channels:
        result = (
            result[:channels]
            if not posterior
            else _posterior(model, noise_models, plane, normalized, result, noise_sigma)
        )
    with np.errstate(over="ignore", invalid="ignore"):
        denoised = model.normalization.denormalize(result)
    check_network_output(denoised, model, source=source)
    if noise_models is None:
        denoised = _blend(model, denoised, observed, fixed_alpha, estimate_from=plane)
    return denoised


def _blend(
    model: TrainedModel,
    denoised: np.ndarray,
    plane: np.ndarray,
    alpha: np.ndarray | None,
    *,
    estimate_from: np.ndarray,
) -> np.ndarray:
    """The prediction blended with the observed (C, Y, X) plane, weight per channel
    (``None``: estimated from ``estimate_from``, the plane with any context)."""
    if alpha is None:
        alpha = _estimated_center_weights(model, estimate_from)
    alpha = np.broadcast_to(alpha, (len(plane),))
    for c, weight in enumerate(alpha.tolist()):
        if weight > 0:
            denoised[c] = (1.0 - weight) * denoised[c] + weight * plane[c]
    return denoised


def masking_radius(model: TrainedModel) -> int:
    """The radius of the windows whose medians mask pixels in blind-spot passes: the
    training's masking radius."""
    return int(model.training.get("masking", {}).get("radius", 2))


def training_objective(model: TrainedModel) -> str:
    """How the denoiser learned (``MaskingConfig.objective``); "n2v" for models trained
    before there was a choice."""
    return str(model.training.get("masking", {}).get("objective", "n2v"))


def learned_noise_model(model: TrainedModel) -> list[NoiseModel] | None:
    """The noise model a denoiser learned with it, one per channel, if it has a
    variance head."""
    values = model.training.get("noise_model")
    net = model.denoiser
    if values is None or net is None or net.config.out_channels == net.config.in_channels:
        return None
    values = values if isinstance(values, list) else [values]
    return [NoiseModel.from_dict(v) for v in values]


def residual_profiles(model: TrainedModel) -> list[ResidualProfile] | None:
    """The blind passes' residual by the head's v, one per channel, for models that
    measured it at training time (the posterior weight's denominator); ``None`` for
    models before it, whose posterior takes the variance head's v."""
    values = model.training.get("residual_profile")
    if values is None or learned_noise_model(model) is None:
        return None
    values = values if isinstance(values, list) else [values]
    return [ResidualProfile.from_dict(v) for v in values]


def _posterior(
    model: TrainedModel,
    noise_models: list[NoiseModel],
    plane: np.ndarray,
    normalized: np.ndarray,
    predicted: np.ndarray,
    noise_sigma: float | str | None,
) -> np.ndarray:
    """The posterior mean of one normalised (C, Y, X) plane from the network's mean and
    variance channels: under the learned noise model, or Gaussian noise of a given
    sigma (per channel). The weight's denominator is the residual the blind passes
    left on the training images where the head predicted this v; for models from
    before that was measured, v itself (on its own scale: a user's sigma is rescaled)."""
    channels = len(plane)
    stds = np.reshape(model.normalization.std, -1)
    profiles = residual_profiles(model)
    # a user's sigma is absolute; the head's variances are on their own scale
    calibrations = variance_calibrations(model, channels) if profiles is None else np.ones(channels)
    result = np.empty(normalized.shape, dtype=np.float32)
    for c in range(channels):
        mean, variance = predicted[c], predicted_variance(predicted[channels + c])
        if profiles is not None:
            variance = profiles[c].variance(variance)
        if noise_sigma is None:
            noise_variance = noise_models[c].variance(mean)
        else:
            if noise_sigma == "auto":
                sigma = estimate_noise_sigma(plane[c])
                logger.info("estimated noise sigma %.3g", sigma)
            else:
                sigma = _as_sigma(noise_sigma)
                if not sigma >= 0:
                    raise InputError(f"noise sigma must be a number >= 0, got {sigma}")
            noise_variance = np.float32((sigma / stds[c]) ** 2 / calibrations[c])
        result[c] = posterior_mean(normalized[c], mean, variance, noise_variance)
    return result


def variance_calibrations(model: TrainedModel, channels: int) -> np.ndarray:
    """Per channel, the blind-spot error over the variance head's mean (training/n2v.py:
    variance_calibration); 1 for models trained before it was measured."""
    values = model.training.get("variance_calibration", 1.0)
    return np.broadcast_to(np.reshape(np.asarray(values, dtype=np.float64), -1), (channels,))


def check_network_output(values: np.ndarray, model: TrainedModel, *, source: str) -> None:
    """Refuse a prediction that overflowed: the input lies far outside the training range."""
    if not np.isfinite(values).all():
        raise InputError(
            f"{source}: intensities far outside the model's range (training "
            f"{model.normalization.describe()}) overflow the network"
        )


def _symmetry(image: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the square's 8 symmetries in the last two axes: rotate by k % 4
    quarter turns, then flip."""
    rotated = np.rot90(image, k % 4, axes=(-2, -1))
    return rotated[..., ::-1] if k >= 4 else rotated


def _symmetry_inverse(image: np.ndarray, k: int) -> np.ndarray:
    unflipped = image[..., ::-1] if k >= 4 else image
    return np.rot90(unflipped, -(k % 4), axes=(-2, -1))


def observed_pixel_weight(
    model: TrainedModel, noise_sigma: float | str | None
) -> np.ndarray | None:
    """The observed pixel's blend weight per channel: 0 without a sigma, fixed for a
    given one, ``None`` for "auto" (estimated per slice). Refuses, before any work, a
    model that stores no blind-spot error."""
    if noise_sigma is None:
        return np.zeros(1)
    if noise_sigma == "auto":
        _blind_spot_mse(model)
        return None
    return center_weights(model, _as_sigma(noise_sigma))


def _as_sigma(noise_sigma: float | str) -> float:
    try:
        return float(noise_sigma)
    except (TypeError, ValueError):
        raise InputError(
            f"noise sigma must be a number >= 0 or 'auto', got {noise_sigma!r}"
        ) from None


def _estimated_center_weights(model: TrainedModel, plane: np.ndarray) -> np.ndarray:
    sigmas = [estimate_noise_sigma(channel) for channel in plane]
    logger.info("estimated noise sigma %s", ", ".join(f"{s:.3g}" for s in sigmas))
    return np.concatenate([center_weights(model, s, channel=c) for c, s in enumerate(sigmas)])


def _blind_spot_mse(model: TrainedModel) -> np.ndarray:
    mse = model.training.get("blind_spot_mse")
    if mse is None and training_objective(model) == "neighbor2neighbor":
        raise InputError(
            "--noise-sigma: this model was trained with neighbor2neighbor, whose network "
            "sees every pixel; it has no blind spot to give back (denoise without it)"
        )
    if mse is None:
        raise InputError(
            f"model of kind {model.kind!r} has no stored blind-spot error; --noise-sigma "
            "needs an N2V or joint model trained by this version"
        )
    return np.reshape(np.asarray(mse, dtype=np.float64), -1)  # one per channel


def center_weights(
    model: TrainedModel, noise_sigma: float, *, channel: int | None = None
) -> np.ndarray:
    """Weight of the observed pixel when blending with the blind-spot prediction, per
    channel (or of one ``channel``)."""
    if not noise_sigma >= 0:
        raise InputError(f"noise sigma must be a number >= 0, got {noise_sigma}")
    mse = _blind_spot_mse(model)
    if channel is not None:
        mse = mse[channel : channel + 1]
    alpha = np.clip((mse - noise_sigma**2) / mse, 0.0, 1.0)
    logger.info(
        "blending %s of the observed pixel (noise sigma %g)",
        ", ".join(f"{a:.3f}" for a in alpha),
        noise_sigma,
    )
    return alpha


def center_weight(model: TrainedModel, noise_sigma: float) -> float:
    """The observed pixel's weight for a one-channel model (see :func:`center_weights`)."""
    return float(center_weights(model, noise_sigma)[0])
