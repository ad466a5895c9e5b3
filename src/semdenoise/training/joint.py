"""End-to-end training of a denoiser cascaded with a segmenter (paper §2.2, §2.3).

Supervised (Eq. 3), labels available: a deliberately weak segmenter is first
pre-trained on the noisy images, then one forward pass per batch gives
Y = F_dn(masked X), l1 = N2V loss at the masked pixels, l2 = BCE(F_seg(Y), labels),
l = w1·l1 + w2·l2 (w1 = 1, w2 = 1.5), and both networks update. Labels may be partial
(as in DenoiSeg): an image without labels contributes l1 only, so every noisy image
trains the denoiser and the few labelled ones train the segmenter too; pixels equal to
``ignore_label`` never count in l2. ``JointConfig.segment_target="instances"`` gives
the segmenter background / interior / boundary outputs, for touching objects.

3-D (``UNetConfig(dims=3)``): both networks are 3-D U-Nets trained on random
(Z, Y, X) crops of volumes with 3-D grid masking and the 16 anisotropic symmetries;
with sparse labels a share of the steps (``labelled_share``, and every pre-training
step) draws crops that hold labelled voxels (:meth:`ImageBank.labelled_crops`), the
others draw crops anywhere, so the denoiser sees the whole volume.

Unsupervised (Eq. 4), no labels: a style segmenter trained on a related task is
loaded and frozen (weights and BatchNorm statistics); l = w1·l1 + w2·l2 (w1 = 9,
w2 = 1) where l2 is the MSE between the denoised image, scaled to [0, 1], and the
segmenter's output on it, which pulls the image towards "clean dark background,
bright targets". By default that output is a detached target; ``style_gradient``
lets the gradient flow through the frozen segmenter too.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from semdenoise.config import (
    MODE_BLIND_FILTER,
    JointConfig,
    MaskingConfig,
    NoiseConfig,
    TrainConfig,
    UNetConfig,
    crop_shape,
)
from semdenoise.errors import InputError
from semdenoise.io.model_file import load_model, save_model
from semdenoise.models.targets import CHANNELS, check_label_values, check_target
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet, without_variance_head
from semdenoise.training.loading import (
    ImagesLike,
    LabelsLike,
    prepare_training_data,
    prepare_training_volumes,
)
from semdenoise.training.losses import n2v_loss, segmentation_loss, style_loss
from semdenoise.training.masking import mask_batch
from semdenoise.training.n2v import (
    blind_spot_statistics,
    check_3d_options,
    seeded_unet,
)
from semdenoise.training.neighbor2neighbor import (
    neighbor2neighbor_loss,
    neighbour_regulariser_weight,
    noise2noise_term,
    pair_choice,
)
from semdenoise.training.runner import TrainingModule, run_training
from semdenoise.training.sampling import ImageBank, augment, centre_crop, label_planes

logger = logging.getLogger(__name__)

# Percentiles of the normalised training images mapped to 0 and 1 before the style
# loss, so the denoised image and the sigmoid output are on the same scale.
STYLE_RANGE_PERCENTILES = (1.0, 99.5)


class JointModule(TrainingModule):
    """Denoiser + segmenter; supervised when the bank carries labels, else style-guided."""

    ddp_find_unused_parameters = True  # pre-training may leave the denoiser out of the loss

    def __init__(
        self,
        denoiser: UNet,
        segmenter: UNet,
        *,
        supervised: bool,
        joint: JointConfig,
        masking: MaskingConfig,
        train: TrainConfig,
        train_bank: ImageBank,
        val_bank: ImageBank | None = None,
        labelled_bank: ImageBank | None = None,
        style_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__(train, train_bank, val_bank)
        self._labelled_bank = labelled_bank
        self.denoiser = denoiser
        self.segmenter = segmenter
        self.supervised = supervised
        self.joint = joint
        self.masking = masking
        self.weights = joint.weights(supervised)
        self.style_range = style_range
        self.batch_size = train.batch_size or 1
        self.volumes = denoiser.config.dims == 3
        self.crop = crop_shape(train, 3) if self.volumes else train.crop_size
        if not supervised:
            segmenter.requires_grad_(False)
            segmenter.eval()

    def train(self, mode: bool = True) -> JointModule:
        """Lightning switches every submodule to train mode; a frozen segmenter stays in
        eval mode so its BatchNorm statistics never move."""
        super().train(mode)
        if not self.supervised:
            self.segmenter.eval()
        return self

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self._labelled_bank is not None:
            rank, world = self.global_rank, self.trainer.world_size
            self._labelled_bank = self._labelled_bank.for_rank(rank, world).to(self.device)

    def draw_batch(self) -> torch.Tensor:
        """A batch of crops or images. With partial labels, a share of the steps
        (``labelled_share``) draws its batch from the labelled images only, so that with
        1 labelled image in 30 the segmenter still sees labels at every other step; the
        other steps draw from all images, and every image trains the denoiser. While
        the segmenter pre-trains, only labelled images have anything to teach."""
        bank = self._train_bank
        if self.volumes:  # labels within volumes: crops that hold labelled voxels, or any
            if self.supervised:
                coin = torch.rand(1, generator=self.generator, device=self.generator.device)
                if self.pretraining or float(coin) < self.joint.labelled_share:
                    return bank.labelled_crops(self.batch_size, self.crop, self.generator)
            return bank.crops(self.batch_size, self.crop, self.generator)
        if self._labelled_bank is not None:
            coin = torch.rand(1, generator=self.generator, device=self.generator.device)
            if self.pretraining or float(coin) < self.joint.labelled_share:
                bank = self._labelled_bank
        return bank.sample(self.batch_size, self.crop, self.generator)

    @property
    def pretraining(self) -> bool:
        return self.supervised and self.progress < self.joint.pretrain_fraction

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        sample = self.draw_batch()
        if self.train_config.augment:
            sample = augment(sample, self.generator)
        noisy = sample[:, : self._train_bank.channels]
        if self.pretraining:  # a weak segmenter on the noisy images
            loss = self.segmentation_term(self.segment(noisy, noisy), sample)
            if self.joint.pretrain_denoiser:  # and, independently, the denoiser alone
                loss = loss + self.denoising_term(noisy)[0]
            self.check_finite(loss)
            self.log("pretrain_loss", loss, prog_bar=True, on_step=True)
            return loss
        l1, denoised = self.denoising_term(noisy)
        if self.supervised:
            l2 = self.segmentation_term(self.segment(noisy, denoised), sample)
        else:
            l2 = self.style_term(denoised)
        w1, w2 = self.weights
        loss = w1 * l1 + w2 * l2
        self.check_finite(loss)
        self.log_dict({"l1_n2v": l1, "l2_task": l2}, on_step=True)
        self.log("train_loss", loss, prog_bar=True, on_step=True)
        return loss

    def denoising_term(self, noisy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 3's l1 and the denoised batch the task term sees. N2V: the loss at the
        masked pixels, and the output on the masked images (the paper's cascade).
        Neighbor2Neighbor: its loss, and the output on the noisy images as they are,
        which is also what the segmenter meets when it is used."""
        if not self.masking.blind_spot:
            choice = pair_choice(noisy, self.generator)
            weight = neighbour_regulariser_weight(self.progress)
            return neighbor2neighbor_loss(self.denoiser, noisy, choice, weight), self.denoiser(
                noisy
            )
        masked, positions = mask_batch(noisy, self.masking, generator=self.generator)
        denoised = self.denoiser(masked)
        return n2v_loss(denoised, noisy, positions), denoised

    def segment(self, noisy: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
        """The segmenter's logits on the denoised image, or with ``segment_input="both"``
        on the noisy and the denoised image as channels: it can then do all a segmenter
        of the noisy image does, and the denoiser, which every image trains, adds a
        channel shaped by both losses."""
        if self.joint.segment_input == "both":
            denoised = torch.cat([noisy, denoised], dim=1)
        return self.segmenter(denoised)

    def segmentation_term(self, logits: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """Eq. 3's l2 over the labelled pixels of the batch (0 for unlabelled images)."""
        target, weight = label_planes(sample, self._train_bank.channels)
        return segmentation_loss(logits, target, self.joint.segment_loss, weight=weight)

    def style_term(self, denoised: torch.Tensor) -> torch.Tensor:
        low, high = self.style_range
        unit = (denoised - low) / (high - low)
        style = torch.sigmoid(self.segmenter(denoised))
        if not self.joint.style_gradient:
            style = style.detach()
        return style_loss(unit, style)

    def validation_step(self, batch: int, batch_idx: int) -> None:
        generator = self.validation_generator(batch_idx)
        sample = self._val_bank.image(batch_idx)
        if self.volumes:  # memory bounded by the crop; one with labels where there are some
            sample = (
                self._val_bank.labelled_crops(1, self.crop, generator)
                if self.supervised
                else centre_crop(sample, self.crop)
            )
        noisy = sample[:, : self._train_bank.channels]
        if not self.masking.blind_spot:
            loss = noise2noise_term(self.denoiser, noisy, pair_choice(noisy, generator))
        else:
            masking = self.masking.model_copy(update={"mode": "grid"})
            masked, positions = mask_batch(noisy, masking, generator=generator)
            loss = n2v_loss(self.denoiser(masked), noisy, positions)
        self.log("val_n2v", loss, on_epoch=True, batch_size=1, sync_dist=True)
        if self.supervised:
            logits = self.segment(noisy, self.denoiser(noisy))
            loss = self.segmentation_term(logits, sample)
            self.log("val_seg", loss, prog_bar=True, on_epoch=True, batch_size=1, sync_dist=True)


def _style_range(bank: ImageBank) -> tuple[float, float]:
    low, high = np.percentile(bank.intensity_values(), STYLE_RANGE_PERCENTILES)
    return float(low), float(max(high, low + 1e-6))


def train_joint(
    images: ImagesLike,
    *,
    labels: LabelsLike | None = None,
    ignore_label: int | None = None,
    background_labels: Sequence[int] = (0,),
    style_segmenter: TrainedModel | str | os.PathLike | None = None,
    init: TrainedModel | str | os.PathLike | None = None,
    unet: UNetConfig | None = None,
    joint: JointConfig | None = None,
    masking: MaskingConfig | None = None,
    train: TrainConfig | None = None,
    axes: str | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> TrainedModel:
    """Train a denoiser end to end with a segmenter.

    Give ``labels`` for the supervised mode (Eq. 3) or ``style_segmenter`` (a model
    file or model holding a segmenter trained on a related task) for the unsupervised
    mode (Eq. 4), not both. Labels may be partial: a labels folder pairs with an images
    folder by file name and images without a label file train the denoiser only; in a
    list of label arrays, ``None`` marks an unlabelled image. ``init`` starts the
    denoiser from an N2V model (its architecture and normalisation come with it).
    ``axes``: the images' (io/axes.py); with C, both networks take that many channels
    (the denoiser ``unet.channels``: together or separately). ``callbacks`` join the
    runner's (see :func:`train_n2v`). Returns a model holding both networks:
    ``denoise`` uses the denoiser, ``segment`` the cascade.
    """
    if (labels is None) == (style_segmenter is None):
        raise InputError("train joint: give either labels (supervised) or a style segmenter")
    supervised = labels is not None
    unet = (unet or UNetConfig()).with_blind_filter(MODE_BLIND_FILTER["joint"])
    joint = joint or JointConfig()
    if not supervised and joint.segment_input != "denoised":
        raise InputError(
            "train joint: --segment-input both needs labels (a style segmenter "
            "sees the denoised image only)"
        )
    masking = masking or MaskingConfig()
    train = train or TrainConfig()
    if supervised:
        check_target(joint.segment_target, joint.segment_loss)
        check_label_values(ignore_label, background_labels)
    start = _as_model(init, role="denoiser", what="--init") if init is not None else None
    style = (
        _as_model(style_segmenter, role="segmenter", what="--style-segmenter")
        if style_segmenter is not None
        else None
    )
    if start is not None and start.denoiser.config.dims != unet.dims:
        dims = start.denoiser.config.dims
        source = f"--init {init}" if not isinstance(init, TrainedModel) else "init"
        raise InputError(f"{source}: a {dims}-D denoiser; train with --dims {dims}")
    if style is not None and style.segmenter.config.dims != unet.dims:
        dims = style.segmenter.config.dims
        source = (
            f"--style-segmenter {style_segmenter}"
            if not isinstance(style_segmenter, TrainedModel)
            else "style segmenter"
        )
        raise InputError(f"{source}: a {dims}-D segmenter; train with --dims {dims}")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    labelled = {
        "normalization": start.normalization if start is not None else None,
        "target": joint.segment_target,
        "ignore_label": ignore_label,
        "background_labels": tuple(background_labels),
        "axes": axes,
        "stream": train.stream,
        "cache_mb": train.cache_mb,
    }
    if unet.dims == 3:
        check_3d_options(start.denoiser.config if start is not None else unet, masking, train)
        data = prepare_training_volumes(
            images,
            labels,
            unet=start.denoiser.config if start is not None else unet,
            val_fraction=train.val_fraction,
            seed=train.seed,
            **labelled,
        )
    else:
        data = prepare_training_data(
            images,
            labels,
            min_size=masking.min_image_side(
                (start.denoiser.config if start is not None else unet).min_size
            ),
            val_fraction=train.val_fraction,
            seed=train.seed,
            **labelled,
        )
    channels = data.channels
    unet = unet.model_copy(update={"in_channels": channels, "out_channels": channels})
    # copies: a library call never trains or freezes the networks it is given
    # a start's variance head (a learned noise model) is dropped: joint trains the mean
    denoiser = (
        without_variance_head(start.denoiser)
        if start is not None
        else seeded_unet(unet, train.seed)
    )
    if style is not None:
        if style.segmenter.config.in_channels != channels:
            raise InputError(
                f"--style-segmenter {style_segmenter}: takes "
                f"{style.segmenter.config.in_channels} channel(s), the images have {channels}"
            )
        segmenter = copy.deepcopy(style.segmenter)
    else:
        seg_config = unet.model_copy(
            update={
                "in_channels": channels * (2 if joint.segment_input == "both" else 1),
                "residual": False,
                "blind_filter": 0,
                "out_channels": CHANNELS[joint.segment_target],
                "channels": "together",  # a segmenter combines the channels
            }
        )
        segmenter = seeded_unet(seg_config, train.seed + 1)
    module = JointModule(
        denoiser,
        segmenter,
        supervised=supervised,
        joint=joint,
        masking=masking,
        train=train,
        train_bank=data.train_bank,
        val_bank=data.val_bank,
        labelled_bank=data.labelled_bank,
        style_range=_style_range(data.train_bank),
    )
    summary = run_training(module, out=out, resume=resume, progress=progress, callbacks=callbacks)
    w1, w2 = module.weights
    denoiser = module.denoiser.cpu().eval()
    model = TrainedModel(
        kind="joint",
        networks={"denoiser": denoiser, "segmenter": module.segmenter.cpu().eval()},
        normalization=data.normalization,
        training={
            "mode": "supervised" if supervised else "unsupervised",
            "weights": [w1, w2],
            "joint": joint.model_dump(),
            "masking": masking.model_dump(),
            "train": train.model_dump(),
            "style_range": list(module.style_range),
            "initialised_from_n2v": start is not None,
            "images": data.count,
            "loading": data.loading,
            "labelled_images": data.labelled_count,
            "ignore_label": ignore_label,
            "background_labels": list(background_labels),
            "validation_images": data.validation_count,
            **({"axes": axes.upper()} if axes is not None else {}),
            # the N2V term keeps the denoiser a blind-spot predictor, so it can blend with
            # the observed pixel at a known sigma like N2V (denoise(noise_sigma=...)); the
            # segmentation term may teach it to pass some of each pixel's own value
            # through, which lowers this error and so the blend weight it leads to.
            # Neighbor2Neighbor's denoiser sees every pixel: nothing to blend back.
            **(
                {
                    "blind_spot_mse": blind_spot_statistics(
                        denoiser, data.train_bank, data.normalization, NoiseConfig()
                    )[0]
                }
                if masking.blind_spot
                else {}
            ),
            **summary,
        },
    )
    if out is not None:
        save_model(model, out)
    return model


def _as_model(model: TrainedModel | str | os.PathLike, *, role: str, what: str) -> TrainedModel:
    loaded = model if isinstance(model, TrainedModel) else load_model(model)
    if loaded.networks.get(role) is None:
        source = model if not isinstance(model, TrainedModel) else f"{loaded.kind} model"
        raise InputError(f"{what} {source}: holds no {role}")
    return loaded
