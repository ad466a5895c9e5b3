"""Noise2Void training: the paper's grid masking on full images, or classic patches
(or, ``MaskingConfig.objective``, Neighbor2Neighbor: training/neighbor2neighbor.py).

One step: sample images (full, or random patches) on the device, apply one of the 8
rotations/flips, mask, run the residual U-Net, and take the MSE at the masked pixels
against the original noisy values (paper §2.1, Eq. 1–2). A 3-D network
(``UNetConfig(dims=3)``) trains the same way on random (Z, Y, X) crops of volumes,
with one masked voxel per grid cell and the 16 symmetries of anisotropic voxels.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from semdenoise.config import (
    MODE_BLIND_FILTER,
    MaskingConfig,
    NoiseConfig,
    TrainConfig,
    UNetConfig,
    crop_shape,
    default_batch_size,
)
from semdenoise.errors import InputError
from semdenoise.io.model_file import save_model
from semdenoise.models.noise_model import (
    NoiseModel,
    ResidualProfile,
    fit_noise_model,
    fit_residual_profile,
    predicted_variance,
)
from semdenoise.models.normalization import Normalization
from semdenoise.models.patch_noise import fit_patch_noise_model
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet
from semdenoise.predict.blind import blind_prediction
from semdenoise.predict.tiling import predict_tiled
from semdenoise.training.loading import ImagesLike, prepare_training_data, prepare_training_volumes
from semdenoise.training.losses import n2v_loss, n2v_variance_loss
from semdenoise.training.masking import mask_batch
from semdenoise.training.neighbor2neighbor import Neighbor2NeighborModule
from semdenoise.training.runner import TrainingModule, run_training
from semdenoise.training.sampling import ImageBank, augment, centre_crop
from semdenoise.training.streaming import centre_window

logger = logging.getLogger(__name__)


def seeded_unet(config: UNetConfig, seed: int) -> UNet:
    """A U-Net whose initial weights depend only on ``seed`` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(config)


class N2VModule(TrainingModule):
    """Trains a residual U-Net denoiser with the blind-spot loss."""

    def __init__(
        self,
        denoiser: UNet,
        masking: MaskingConfig,
        train: TrainConfig,
        train_bank: ImageBank,
        val_bank: ImageBank | None = None,
    ) -> None:
        super().__init__(train, train_bank, val_bank)
        self.denoiser = denoiser
        self.masking = masking
        self.learns_variance = denoiser.config.out_channels == 2 * denoiser.config.in_channels
        self.batch_size = train.batch_size or default_batch_size(masking)
        if denoiser.config.dims == 3:
            self.crop: int | tuple[int, ...] | None = crop_shape(train, 3)
        else:
            self.crop = masking.patch_size if masking.mode == "patch" else train.crop_size

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        noisy = self._train_bank.sample(self.batch_size, self.crop, self.generator)
        if self.train_config.augment:
            noisy = augment(noisy, self.generator)
        masked, positions = mask_batch(noisy, self.masking, generator=self.generator)
        prediction = self.denoiser(masked)
        loss = n2v_loss(prediction, noisy, positions)
        if self.learns_variance:
            variance_loss = n2v_variance_loss(prediction, noisy, positions)
            self.log("variance_nll", variance_loss, on_step=True)
            loss = loss + variance_loss
        self.check_finite(loss)
        self.log("train_loss", loss, prog_bar=True, on_step=True)
        self.log("lr", self.learning_rate_now(), on_step=True)
        return loss

    def validation_step(self, batch: int, batch_idx: int) -> None:
        generator = self.validation_generator(batch_idx)
        noisy = self._val_bank.image(batch_idx)
        if self.denoiser.config.dims == 3:  # memory bounded by the crop, not the volume
            noisy = centre_crop(noisy, self.crop)
        masking = self.masking.model_copy(update={"mode": "grid"})
        masked, positions = mask_batch(noisy, masking, generator=generator)
        loss = n2v_loss(self.denoiser(masked), noisy, positions)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=1, sync_dist=True)


def blind_spot_statistics(
    denoiser: UNet,
    bank: ImageBank,
    normalization: Normalization,
    noise: NoiseConfig,
    *,
    max_pixels: int = 4_000_000,
) -> tuple[float | list[float], NoiseModel | list[NoiseModel] | None]:
    """What ``denoise`` needs to weigh the prediction against the observed pixel, from
    the trained network on its noisy training images (up to ``max_pixels``).

    The mean squared difference between prediction and image, in the input's units: for
    pixel-independent noise, the prediction's error plus the noise variance (what
    ``denoise(noise_sigma=...)`` uses). And, for a network with a variance head, the
    noise model fitted under its predicted variances (normalised units). Images with
    several channels get both per channel (lists).
    """
    channels = bank.channels
    totals, count = np.zeros(channels), 0
    means: list[list[np.ndarray]] = [[] for _ in range(channels)]
    variances: list[list[np.ndarray]] = [[] for _ in range(channels)]
    rng = np.random.default_rng(0)
    for index in range(bank.count):
        image = bank.image(index)[0, :channels].cpu().numpy()  # (C, *spatial)
        if denoiser.config.dims == 3:
            image = image[:, : max(1, max_pixels // (image.shape[-2] * image.shape[-1]))]
        elif image[0].size > max_pixels:  # one huge image: its centre is sample enough
            side = math.isqrt(max_pixels)
            image = image[(slice(None), *centre_window(image.shape[1:], (side, side)))]
        predicted = predict_tiled(denoiser, image[0] if channels == 1 else image)
        spatial = image.shape[1:]
        predicted = predicted.reshape(-1, *spatial)  # (outputs, *spatial)
        if len(predicted) > channels:  # mean and variance channels
            pick = rng.random(spatial) < min(1.0, 250_000 / math.prod(spatial))
            for c in range(channels):
                means[c].append(predicted[c][pick])
                variances[c].append(predicted_variance(predicted[channels + c])[pick])
        for c in range(channels):
            totals[c] += float(np.square(predicted[c] - image[c], dtype=np.float64).sum())
        count += math.prod(spatial)
        if count >= max_pixels:
            break
    stds = normalization.std if channels > 1 else (normalization.std,)
    mse = [float(total / count * std**2) for total, std in zip(totals, stds, strict=True)]
    fitted = None
    if means[0]:  # a variance head: its noise model, per channel
        fitted = [
            fit_noise_model(
                np.concatenate(means[c]),
                np.concatenate(variances[c]),
                noise.model,
                quantile=noise.quantile,
            )
            for c in range(channels)
        ]
    if channels == 1:
        return mse[0], fitted[0] if fitted else None
    return mse, fitted


def blind_pass_statistics(
    denoiser: UNet,
    bank: ImageBank,
    *,
    radius: int,
    max_pixels: int = 1_000_000,
    window: int = 512,
) -> tuple[list[float], list[ResidualProfile]]:
    """What the blind passes ``denoise`` makes (predict/blind.py) miss, on central
    windows of the noisy training images (up to ``max_pixels``), per channel (lists): the
    residual (y − μ)² by the variance head's v (the posterior weight's denominator,
    models/noise_model.py ResidualProfile), and its mean over the mean of v (the
    calibration).

    On those passes v overstates the error (measured: 1.6x on EM, 3x on FMD); likely
    because the head learned it where training masked a pixel by a random neighbour,
    while the passes mask by the window median. Models trained before the residual
    profile compare a user's sigma with v through the calibration (S² divided by it).
    """
    channels = bank.channels
    errors, variances, count = np.zeros(channels), np.zeros(channels), 0
    # per channel, the passes' (v, μ, y) at every pixel: 3 x 4 MB at most
    samples: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(channels)]
    for index in range(bank.count):
        image = bank.image(index)[0, :channels].cpu().numpy()  # (C, Y, X), normalised
        image = image[(slice(None), *centre_window(image.shape[1:], (window, window)))]
        predicted = blind_prediction(denoiser, image, radius=radius)
        for c in range(channels):
            variance = predicted_variance(predicted[channels + c])
            errors[c] += float(np.square(image[c] - predicted[c], dtype=np.float64).sum())
            variances[c] += float(variance.sum(dtype=np.float64))
            samples[c].append((variance.ravel(), predicted[c].ravel(), image[c].ravel()))
        count += image[0].size
        if count >= max_pixels:
            break
    scales = [float(e / v) for e, v in zip(errors, variances, strict=True)]
    profiles = [
        fit_residual_profile(*(np.concatenate(column) for column in zip(*samples[c], strict=True)))
        for c in range(channels)
    ]
    return scales, profiles


def posterior_record(
    denoiser: UNet,
    bank: ImageBank,
    noise: NoiseConfig,
    envelope: NoiseModel | list[NoiseModel],
    *,
    radius: int,
) -> dict[str, Any]:
    """What ``denoise``'s posterior mean needs, for the model file (one entry per
    channel, a list when there are several): the noise model it weighs with, on the
    blind passes' residual scale (``noise.estimate``: from the training images' patches,
    or the head's ``envelope`` times the calibration), the residual profile, and for
    the record the envelope and the calibration themselves."""
    scales, profiles = blind_pass_statistics(denoiser, bank, radius=radius)
    envelopes = envelope if isinstance(envelope, list) else [envelope]
    if noise.estimate == "patches":
        used = training_noise_model(bank, noise)
    else:
        used = [
            NoiseModel(m.kind, m.offset * k, m.slope * k)
            for m, k in zip(envelopes, scales, strict=True)
        ]

    def record(items: list) -> Any:  # one channel: the item itself, as the file had
        return items[0] if bank.channels == 1 else items

    return {
        "noise_model": record([m.to_dict() for m in used]),
        "residual_profile": record([p.to_dict() for p in profiles]),
        "noise_envelope": record([e.to_dict() for e in envelopes]),
        "variance_calibration": record(scales),
    }


def training_noise_model(
    bank: ImageBank, noise: NoiseConfig, *, max_pixels: int = 4_000_000
) -> list[NoiseModel]:
    """The noise variance of the noisy training images (normalised units, per channel),
    estimated from their patches (models/patch_noise.py), up to ``max_pixels``."""
    channels = bank.channels
    planes: list[list[np.ndarray]] = [[] for _ in range(channels)]
    count = 0
    for index in range(bank.count):
        image = bank.image(index)[0, :channels].cpu().numpy()  # (C, *spatial), normalised
        for c in range(channels):
            planes[c].append(image[c])
        count += image[0].size
        if count >= max_pixels:
            break
    return [fit_patch_noise_model(planes[c], noise.model) for c in range(channels)]


def objective_noise(masking: MaskingConfig, noise: NoiseConfig) -> NoiseConfig:
    """The noise model an objective learns: Neighbor2Neighbor none (``auto`` becomes
    ``none``; asking for one is refused in one line)."""
    if masking.blind_spot:
        return noise
    if noise.model not in ("auto", "none"):
        raise InputError(
            f"--noise-model {noise.model} needs the blind spot of --objective n2v; "
            "neighbor2neighbor learns no noise model (use --noise-model none or auto)"
        )
    return noise.model_copy(update={"model": "none"})


def check_3d_options(unet: UNetConfig, masking: MaskingConfig, train: TrainConfig) -> None:
    """Refuse, in one line, settings a 3-D network cannot train with."""
    if not masking.blind_spot:
        raise InputError("--objective neighbor2neighbor is 2-D only; train 3-D networks with n2v")
    if masking.mode == "patch":
        raise InputError(
            "--masking patch is 2-D only; a 3-D network trains on random crops "
            "(--crop-depth, --crop-size) with grid masking"
        )
    check_3d_crop(unet, train)


def check_3d_crop(unet: UNetConfig, train: TrainConfig) -> None:
    """Refuse, in one line, a 3-D training crop smaller than the network needs."""
    depth, side = crop_shape(train, 3)[:2]
    if depth < unet.min_size_z or side < unet.min_size:
        raise InputError(
            f"training crop {depth}x{side}x{side} is smaller than the "
            f"{unet.min_size_z}x{unet.min_size}x{unet.min_size} this network needs"
        )


def train_n2v(
    images: ImagesLike,
    *,
    unet: UNetConfig | None = None,
    masking: MaskingConfig | None = None,
    train: TrainConfig | None = None,
    noise: NoiseConfig | None = None,
    axes: str | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> TrainedModel:
    """Train a Noise2Void denoiser on noisy images alone.

    Parameters
    ----------
    images
        A path (2-D image, stack, or folder of them), a 2-D/3-D array, or a list of
        2-D arrays. Every 2-D slice is one training image. For a 3-D network
        (``unet.dims == 3``) each file or array is one (Z, Y, X) volume.
    unet, masking, train
        Architecture, blind-spot masking and run settings (defaults: the paper's).
    noise
        The noise model learned with the denoiser (``NoiseConfig.model``): with one, the
        network gets a variance head and the model file the fitted noise model, which
        ``denoise`` then uses to give back what the blind spot loses.
        3-D trains on random crops (``train.crop_depth`` x ``crop_size``², default
        32x64x64) with grid masking only.
    axes
        The images' axes (io/axes.py: "SYX", "CYX", "SCZYX", ...; default: YX, and a
        3-D array a stack for a 2-D network, a volume for a 3-D one). With C, the model
        denoises that many channels (``unet.channels``: together or separately).
    out
        Where to write the model file; checkpoints go to ``out + ".checkpoints/"``.
        Without it there are no checkpoints and nothing is written.
    resume
        Continue from the latest checkpoint beside ``out``.
    callbacks
        Lightning callbacks joining the runner's own (the napari plugin's progress bar
        and stop button; setting ``trainer.should_stop`` ends the run with a complete
        model, as ``max_minutes`` does).

    Returns
    -------
    TrainedModel
        Holding the denoiser, the normalisation and the run's record.
    """
    unet = (unet or UNetConfig()).with_blind_filter(MODE_BLIND_FILTER["n2v"])
    masking = masking or MaskingConfig()
    train = train or TrainConfig()
    noise = objective_noise(masking, noise or NoiseConfig()).resolved(unet.dims)
    if noise.model != "none" and unet.dims == 3:
        raise InputError("--noise-model is 2-D only; train 3-D networks with --noise-model none")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    if unet.dims == 3:
        check_3d_options(unet, masking, train)
        data = prepare_training_volumes(
            images,
            unet=unet,
            val_fraction=train.val_fraction,
            seed=train.seed,
            axes=axes,
            stream=train.stream,
            cache_mb=train.cache_mb,
        )
    else:
        data = prepare_training_data(
            images,
            None,
            min_size=masking.min_image_side(unet.min_size),
            val_fraction=train.val_fraction,
            seed=train.seed,
            axes=axes,
            stream=train.stream,
            cache_mb=train.cache_mb,
        )
    # one mean channel per image channel, and with a noise model a variance channel each
    outputs = data.channels * (1 if noise.model == "none" else 2)
    unet = unet.model_copy(update={"in_channels": data.channels, "out_channels": outputs})
    denoiser = seeded_unet(unet, train.seed)
    if masking.blind_spot:
        module: TrainingModule = N2VModule(denoiser, masking, train, data.train_bank, data.val_bank)
    else:
        module = Neighbor2NeighborModule(denoiser, train, data.train_bank, data.val_bank)
    summary = run_training(module, out=out, resume=resume, progress=progress, callbacks=callbacks)
    denoiser = module.denoiser.cpu().eval()
    mse, noise_model = None, None
    if masking.blind_spot:  # a network that sees every pixel has no blind-spot error
        mse, noise_model = blind_spot_statistics(
            denoiser, data.train_bank, data.normalization, noise
        )
    posterior = {}
    if noise_model is not None:
        posterior = posterior_record(
            denoiser, data.train_bank, noise, noise_model, radius=masking.radius
        )
    model = TrainedModel(
        kind="n2v",
        networks={"denoiser": denoiser},
        normalization=data.normalization,
        training={
            "masking": masking.model_dump(),
            "train": train.model_dump(),
            "images": data.count,
            "loading": data.loading,
            "validation_images": data.validation_count,
            "noise": noise.model_dump(),
            **({"blind_spot_mse": mse} if mse is not None else {}),
            **posterior,
            **({"axes": axes.upper()} if axes is not None else {}),
            **summary,
        },
    )
    if out is not None:
        save_model(model, out)
    return model
