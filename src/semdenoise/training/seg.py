"""Segmenter training: the same U-Net without residual, one channel of logits per class.

BCE by default (paper §2.2), Dice or BCE+Dice as options, and MSE of the sigmoid
against the mask for a *style* segmenter, used later as an image-style prior for the
unsupervised end-to-end mode (paper §2.3, §3.2). With ``target="instances"`` the
segmenter has three outputs (background, interior, boundary; cross-entropy) so that
touching objects can be separated (:mod:`semdenoise.models.targets`). Images without
labels are skipped; pixels equal to ``ignore_label`` do not count.

A 3-D segmenter (``UNetConfig(dims=3)``) trains on random (Z, Y, X) crops of volumes
with their label volumes, each crop drawn to contain labelled voxels
(:meth:`ImageBank.labelled_crops`), since sparse volume labels (a few labelled slices)
leave most random crops with nothing to learn from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from semdenoise.config import SegLoss, TrainConfig, UNetConfig, crop_shape
from semdenoise.io.model_file import save_model
from semdenoise.models.targets import (
    CHANNELS,
    SegTarget,
    check_label_values,
    check_target,
    predicted_foreground,
)
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet
from semdenoise.training.loading import (
    ImagesLike,
    prepare_training_data,
    prepare_training_volumes,
)
from semdenoise.training.losses import segmentation_loss
from semdenoise.training.n2v import check_3d_crop, seeded_unet
from semdenoise.training.runner import TrainingModule, run_training
from semdenoise.training.sampling import ImageBank, augment, label_planes

DEFAULT_SEG_BATCH = 4
DEFAULT_SEG_BATCH_3D = 2  # 3-D crops (32x64x64 by default) are 32x the voxels of 2-D ones


def foreground_iou_torch(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Foreground IoU of boolean tensors, for validation inside a training step."""
    union = (prediction | truth).sum()
    if union == 0:
        return torch.ones((), device=prediction.device)
    return (prediction & truth).sum() / union


class SegModule(TrainingModule):
    """Trains a logit U-Net on (image, label) pairs."""

    def __init__(
        self,
        segmenter: UNet,
        loss: SegLoss,
        train: TrainConfig,
        train_bank: ImageBank,
        val_bank: ImageBank | None = None,
    ) -> None:
        super().__init__(train, train_bank, val_bank)
        self.segmenter = segmenter
        self.loss_kind = loss
        self.volumes = segmenter.config.dims == 3
        default_batch = DEFAULT_SEG_BATCH_3D if self.volumes else DEFAULT_SEG_BATCH
        self.batch_size = train.batch_size or default_batch
        self.crop = crop_shape(train, 3) if self.volumes else train.crop_size

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        bank = self._train_bank
        if self.volumes:  # sparse labels: crops that hold labelled voxels
            pairs = bank.labelled_crops(self.batch_size, self.crop, self.generator)
        else:
            pairs = bank.sample(self.batch_size, self.crop, self.generator)
        if self.train_config.augment:
            pairs = augment(pairs, self.generator)
        channels = self._train_bank.channels
        target, weight = label_planes(pairs, channels)
        loss = segmentation_loss(
            self.segmenter(pairs[:, :channels]), target, self.loss_kind, weight
        )
        self.check_finite(loss)
        self.log("train_loss", loss, prog_bar=True, on_step=True)
        return loss

    def validation_step(self, batch: int, batch_idx: int) -> None:
        if self.volumes:  # memory bounded by the crop; one with labels where there are some
            generator = self.validation_generator(batch_idx)
            pair = self._val_bank.labelled_crops(1, self.crop, generator)
        else:
            pair = self._val_bank.image(batch_idx)
        channels = self._val_bank.channels
        target, weight = label_planes(pair, channels)
        logits = self.segmenter(pair[:, :channels])
        self.log(
            "val_loss",
            segmentation_loss(logits, target, self.loss_kind, weight),
            prog_bar=True,
            on_epoch=True,
            batch_size=1,
            sync_dist=True,
        )
        labelled = torch.ones_like(target, dtype=torch.bool) if weight is None else weight > 0
        self.log(
            "val_iou",
            foreground_iou_torch(
                predicted_foreground(logits) & labelled, (target > 0.5) & labelled
            ),
            prog_bar=True,
            on_epoch=True,
            batch_size=1,
            sync_dist=True,
        )


def train_seg(
    images: ImagesLike,
    labels: ImagesLike,
    *,
    unet: UNetConfig | None = None,
    loss: SegLoss = "bce",
    target: SegTarget = "foreground",
    ignore_label: int | None = None,
    background_labels: Sequence[int] = (0,),
    train: TrainConfig | None = None,
    axes: str | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> TrainedModel:
    """Train a segmenter on images and their labels (masks or label images, any non-zero
    is foreground; a labels folder pairs with an images folder by file name, and images
    without a label file are skipped).

    ``loss="mse"`` trains a style segmenter for :func:`train_joint`'s unsupervised mode.
    ``target="instances"`` learns background / interior / boundary so that
    ``segment(..., instances=True)`` separates touching objects. Pixels whose label is
    ``ignore_label`` do not count; values in ``background_labels`` are background, all
    others foreground. ``axes``: the images' (the labels' are the same less C); with C,
    the segmenter takes every channel. ``unet=UNetConfig(dims=3)`` trains on (Z, Y, X)
    volumes (one per file or array) and label volumes of the same shape, on random
    ``train.crop_depth`` x ``crop_size``² crops that hold labelled voxels. Other
    parameters as in :func:`train_n2v`.
    """
    check_target(target, loss)
    check_label_values(ignore_label, background_labels)
    unet = (unet or UNetConfig()).model_copy(
        update={"residual": False, "blind_filter": 0, "out_channels": CHANNELS[target]}
    )
    train = train or TrainConfig()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    labelled = {
        "target": target,
        "ignore_label": ignore_label,
        "background_labels": tuple(background_labels),
        "labelled_only": True,
        "axes": axes,
        "stream": train.stream,
        "cache_mb": train.cache_mb,
    }
    if unet.dims == 3:
        check_3d_crop(unet, train)
        data = prepare_training_volumes(
            images, labels, unet=unet, val_fraction=train.val_fraction, seed=train.seed, **labelled
        )
    else:
        data = prepare_training_data(
            images,
            labels,
            min_size=unet.min_size,
            val_fraction=train.val_fraction,
            seed=train.seed,
            **labelled,
        )
    unet = unet.model_copy(update={"in_channels": data.channels, "channels": "together"})
    module = SegModule(seeded_unet(unet, train.seed), loss, train, data.train_bank, data.val_bank)
    summary = run_training(module, out=out, resume=resume, progress=progress, callbacks=callbacks)
    model = TrainedModel(
        kind="seg",
        networks={"segmenter": module.segmenter.cpu().eval()},
        normalization=data.normalization,
        training={
            "loss": loss,
            "target": target,
            "ignore_label": ignore_label,
            "background_labels": list(background_labels),
            "train": train.model_dump(),
            "images": data.count,
            "loading": data.loading,
            "validation_images": data.validation_count,
            **({"axes": axes.upper()} if axes is not None else {}),
            **summary,
        },
    )
    if out is not None:
        save_model(model, out)
    return model
