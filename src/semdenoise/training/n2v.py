"""Noise2Void training: the paper's grid masking on full images, or classic patches.

One step: sample images (full, or random patches) on the device, apply one of the 8
rotations/flips, mask, run the residual U-Net, and take the MSE at the masked pixels
against the original noisy values (paper §2.1, Eq. 1–2).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from semdenoise.config import MaskingConfig, TrainConfig, UNetConfig, default_batch_size
from semdenoise.io.model_file import save_model
from semdenoise.losses import n2v_loss
from semdenoise.masking import mask_batch
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet
from semdenoise.normalization import Normalization
from semdenoise.training.data import (
    ImageBank,
    ImagesLike,
    augment,
    load_training_images,
    split_by_image,
)
from semdenoise.training.runner import (
    TrainingModule,
    checkpoint_dir_for,
    run_training,
)

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
        super().__init__(train)
        self.denoiser = denoiser
        self.masking = masking
        self.batch_size = train.batch_size or default_batch_size(masking)
        self._train_bank = train_bank
        self._val_bank = val_bank

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self._train_bank = self._train_bank.to(self.device)
        if self._val_bank is not None:
            self._val_bank = self._val_bank.to(self.device)

    def sample(self) -> torch.Tensor:
        if self.masking.mode == "patch":
            return self._train_bank.crops(self.batch_size, self.masking.patch_size, self.generator)
        if self.train_config.crop_size is not None:
            return self._train_bank.crops(
                self.batch_size, self.train_config.crop_size, self.generator
            )
        return self._train_bank.full_images(self.batch_size, self.generator)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        noisy = self.sample()
        if self.train_config.augment:
            noisy = augment(noisy, self.generator)
        masked, positions = mask_batch(noisy, self.masking, generator=self.generator)
        loss = n2v_loss(self.denoiser(masked), noisy, positions)
        self.check_finite(loss)
        self.log("train_loss", loss, prog_bar=True, on_step=True)
        self.log("lr", self.learning_rate_now(), on_step=True)
        return loss

    def validation_step(self, batch: int, batch_idx: int) -> None:
        # Fixed masks per validation image, so successive validations are comparable.
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.train_config.seed + 1_000_003 * (batch_idx + 1))
        stack_index, image_index = self._val_index[batch_idx]
        noisy = self._val_bank.stacks[stack_index][image_index : image_index + 1]
        masking = self.masking.model_copy(update={"mode": "grid"})
        masked, positions = mask_batch(noisy, masking, generator=generator)
        loss = n2v_loss(self.denoiser(masked), noisy, positions)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=1)

    @property
    def _val_index(self) -> list[tuple[int, int]]:
        return [(s, i) for s, stack in enumerate(self._val_bank.stacks) for i in range(len(stack))]


def train_n2v(
    images: ImagesLike,
    *,
    unet: UNetConfig | None = None,
    masking: MaskingConfig | None = None,
    train: TrainConfig | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
) -> TrainedModel:
    """Train a Noise2Void denoiser on noisy images alone.

    Parameters
    ----------
    images
        A path (2-D image, stack, or folder of them), a 2-D/3-D array, or a list of
        2-D arrays. Every 2-D slice is one training image.
    unet, masking, train
        Architecture, blind-spot masking and run settings (defaults: the paper's).
    out
        Where to write the model file; checkpoints go to ``out + ".checkpoints/"``.
        Without it there are no checkpoints and nothing is written.
    resume
        Continue from the latest checkpoint beside ``out``.

    Returns
    -------
    TrainedModel
        Holding the denoiser, the normalisation and the run's record.
    """
    unet = unet or UNetConfig()
    masking = masking or MaskingConfig()
    train = train or TrainConfig()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    named = load_training_images(images, min_size=unet.min_size)
    train_ids, val_ids = split_by_image(len(named), train.val_fraction, seed=train.seed)
    if not val_ids:
        logger.info("%d image(s): too few to hold any out for validation", len(named))
    normalization = Normalization.fit([named[i][1] for i in train_ids])
    train_bank = ImageBank.from_arrays([normalization.normalize(named[i][1]) for i in train_ids])
    val_bank = (
        ImageBank.from_arrays([normalization.normalize(named[i][1]) for i in val_ids])
        if val_ids
        else None
    )
    denoiser = seeded_unet(unet, train.seed)
    module = N2VModule(denoiser, masking, train, train_bank, val_bank)
    val_loader = (
        torch.utils.data.DataLoader(range(val_bank.count), batch_size=None)
        if val_bank is not None
        else None
    )
    checkpoint_dir = checkpoint_dir_for(out) if out is not None else None
    summary = run_training(
        module,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        val_loader=val_loader,
        progress=progress,
    )
    model = TrainedModel(
        kind="n2v",
        networks={"denoiser": module.denoiser.cpu().eval()},
        normalization=normalization,
        training={
            "masking": masking.model_dump(),
            "train": train.model_dump(),
            "images": len(named),
            "validation_images": len(val_ids),
            **summary,
        },
    )
    if out is not None:
        save_model(model, out)
    return model
