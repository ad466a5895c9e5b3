"""Every validated configuration, and its YAML round trip.

Configs are pydantic models with ``extra="forbid"`` so that a typo in a YAML file or a
model file is an error, not a silently ignored setting. A field's ``description`` is
its CLI help.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from semdenoise.errors import InputError

# Paper §3.2: 169 masked pixels (a 13x13 grid) on a 256x256 image.
PAPER_GRID_CELLS = 13
PAPER_IMAGE_SIDE = 256


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UNetConfig(_Config):
    """Architecture of the U-Net (paper §2.1–2.2, Tab. 1)."""

    dims: Literal[2] = Field(2, description="Spatial dimensions of the network.")
    depth: int = Field(2, ge=1, le=5, description="Number of down-sampling steps.")
    base_channels: int = Field(32, ge=1, le=256, description="Channels of the first level.")
    in_channels: int = Field(1, ge=1)
    out_channels: int = Field(1, ge=1)
    residual: bool = Field(
        True,
        description="Add the input to the output (the paper's residual denoiser); "
        "off, the network predicts the image directly (segmenters: always off).",
    )
    negative_slope: float = Field(0.01, ge=0.0, lt=1.0, description="LeakyReLU slope.")

    @property
    def size_multiple(self) -> int:
        """Spatial sizes the network runs on without padding: multiples of 2**depth."""
        return 2**self.depth

    @property
    def min_size(self) -> int:
        """Smallest Y/X side accepted: one pooling cell at the bottom level, and at least 8."""
        return max(self.size_multiple, 8)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context on each side that can influence one output pixel.

        Each level ``l`` adds two 3x3 convolutions at scale ``2**l`` on the way down and
        on the way up; pooling and upsampling add at most ``2**l - 1`` each.
        """
        radius = 0
        for level in range(self.depth):
            radius += 2 * 2 * 2**level + 2 * (2**level)
        radius += 2 * 2**self.depth
        return radius


class MaskingConfig(_Config):
    """Blind-spot masking for Noise2Void training (paper §2.1, Fig. 2)."""

    mode: Literal["grid", "patch"] = Field(
        "grid",
        description="grid: full images, one masked pixel per grid cell (the paper); "
        "patch: classic N2V on random patches with random positions.",
    )
    replacement: Literal["neighbour", "median"] = Field(
        "neighbour",
        description="neighbour: value of a random other pixel in the window (N2V); "
        "median: median of the window without its centre (N2V2).",
    )
    radius: int = Field(2, ge=1, le=7, description="Replacement window is (2r+1)^2.")
    pixels_per_mask: float = Field(
        PAPER_IMAGE_SIDE**2 / PAPER_GRID_CELLS**2,
        gt=1.0,
        description="Grid mode: one masked pixel per this many pixels (paper: 256^2/169).",
    )
    n_masked: int | None = Field(
        None, ge=1, description="Grid mode: masked pixels per image, overriding the density."
    )
    patch_size: int = Field(64, ge=8, description="Patch mode: side of the random patches.")
    patch_fraction: float = Field(
        0.002, gt=0.0, le=0.25, description="Patch mode: fraction of pixels masked."
    )

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """Grid cells (rows, cols) for an image: the paper's density unless a count is set."""
        target = (
            self.n_masked if self.n_masked is not None else height * width / self.pixels_per_mask
        )
        target = max(1.0, float(target))
        cell = math.sqrt(height * width / target)
        rows = min(height, max(1, round(height / cell)))
        cols = min(width, max(1, round(width / cell)))
        return rows, cols


class TrainConfig(_Config):
    """How long and how to train; stored in the model file for provenance."""

    steps: int | None = Field(None, ge=1, description="Optimiser steps to run.")
    max_minutes: float | None = Field(
        None, gt=0.0, description="Stop after this wall-clock time (and still write a model)."
    )
    batch_size: int | None = Field(
        None, ge=1, description="Images (grid) or patches (patch) per step; default by mode."
    )
    learning_rate: float = Field(4e-4, gt=0.0, le=1.0, description="Adam learning rate.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="Learning-rate schedule over the planned steps."
    )
    seed: int = Field(0, ge=0, description="Seed for weights, masking, sampling, splits.")
    val_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="Fraction of images held out for validation."
    )
    val_every: int = Field(200, ge=1, description="Validate every this many steps.")
    checkpoint_every: int = Field(500, ge=1, description="Checkpoint every this many steps.")
    crop_size: int | None = Field(
        None,
        ge=8,
        description="Grid mode: train on random square crops of this side "
        "instead of full images (for images too large for one step).",
    )
    augment: bool = Field(True, description="Random rotations/flips (the 8 of paper §3.1).")
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="Where to train.")


def default_batch_size(masking: MaskingConfig) -> int:
    """Full images go one or a few at a time; 64x64 patches in a larger batch."""
    return 1 if masking.mode == "grid" else 32


def parse(config_type: type[_Config], values: dict, *, source: str) -> _Config:
    """Validate ``values`` into ``config_type``; a one-line InputError names ``source``."""
    try:
        return config_type(**values)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or config_type.__name__
        raise InputError(f"{source}: {where}: {first['msg']}") from e


def save_yaml(config: _Config, path: str | Path) -> None:
    """Write a config as YAML (human-editable, round-trips through ``load_yaml``)."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))


def load_yaml(config_type: type[_Config], path: str | Path) -> _Config:
    """Read a YAML config; safe_load only, nothing in it is executed."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"{path}: cannot read YAML config: {e}") from e
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a mapping of settings, found {type(values).__name__}")
    return parse(config_type, values, source=str(path))


SegLoss = Literal["bce", "dice", "bce+dice", "mse"]


class JointConfig(_Config):
    """End-to-end training of denoiser and segmenter (paper §2.2 Eq. 3, §2.3 Eq. 4)."""

    denoise_weight: float | None = Field(
        None, ge=0.0, description="w1 on the N2V loss (default: 1 supervised, 9 unsupervised)."
    )
    segment_weight: float | None = Field(
        None, ge=0.0, description="w2 on the segmentation/style loss (default: 1.5 / 1)."
    )
    pretrain_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Supervised: share of the run spent pre-training a weak segmenter on the "
        "noisy images before joint training.",
    )
    pretrain_denoiser: bool = Field(
        False,
        description="Supervised: train the denoiser with the N2V loss alone during the "
        "pre-training phase too, so the segmenter's loss meets a denoiser that denoises.",
    )
    segment_loss: SegLoss = Field("bce", description="Supervised segmentation loss (Eq. 3: bce).")
    style_gradient: bool = Field(
        False,
        description="Unsupervised: let the style loss's gradient flow through the frozen "
        "segmenter's output too (default: its output is a detached target).",
    )

    def weights(self, supervised: bool) -> tuple[float, float]:
        """(w1, w2): the paper's §3.3 values unless set."""
        default = (1.0, 1.5) if supervised else (9.0, 1.0)
        return (
            default[0] if self.denoise_weight is None else self.denoise_weight,
            default[1] if self.segment_weight is None else self.segment_weight,
        )
