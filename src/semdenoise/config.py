"""Every validated configuration, its YAML round trip, and the named presets.

Configs are pydantic models with ``extra="forbid"`` so that a typo in a YAML file or a
model file is an error, not a silently ignored setting. A field's ``description`` is
its CLI help and its default is the only default (the CLI passes on only what a user
gave). A run's settings are one YAML file of sections (``train:``, ``unet:``, ...), one
per config; :func:`resolve_settings` layers presets, such files and options.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from semdenoise.errors import InputError

# Paper §3.2: 169 masked pixels (a 13x13 grid) on a 256x256 image.
PAPER_GRID_CELLS = 13
PAPER_IMAGE_SIDE = 256
# The default: one masked pixel in 25 (a 5x5 grid cell), 16x the paper's density, so the
# variance head of a learned noise model gets enough masked pixels (issue 16 sweep).
DEFAULT_PIXELS_PER_MASK = 25.0
# Training steps of each N2V baseline in an evaluation (``--baseline-steps``): here, where
# the CLI reads it without importing torch.
DEFAULT_BASELINE_STEPS = 500
# The largest window side fed to a 2-D network at prediction (denoise, segment, check).
DEFAULT_TILE_SIZE = 1024
# Optimiser steps of a run given neither --steps nor --max-minutes.
DEFAULT_STEPS = 2000


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UNetConfig(_Config):
    """Architecture of the U-Net (paper §2.1–2.2, Tab. 1), 2-D or 3-D.

    Model files written before 3-D existed hold no ``dims`` and load as 2-D.
    """

    dims: Literal[2, 3] = Field(
        2,
        description="Spatial dimensions of the network: 2 (images, stacks slice by "
        "slice) or 3 (ZYX volumes, conv3x3x3).",
    )
    depth: int = Field(3, ge=1, le=5, description="Number of down-sampling steps (the paper's: 2).")
    base_channels: int = Field(
        16, ge=1, le=256, description="Channels of the first level (the paper's: 32)."
    )
    in_channels: int = Field(1, ge=1)
    out_channels: int = Field(1, ge=1)
    channels: Literal["together", "separate"] = Field(
        "separate",
        description="Images with several channels (--axes with C): an independent "
        "denoiser per channel (grouped convolutions, each the full width; measured "
        "steadier), or one over all channels together. Segmenters always see them "
        "together.",
    )
    residual: bool = Field(
        False,
        description="Add the input to the output (the paper's residual denoiser); "
        "off, the network predicts the image directly (segmenters: always off).",
    )
    negative_slope: float = Field(0.01, ge=0.0, lt=1.0, description="LeakyReLU slope.")
    blur_pool: bool = Field(
        False,
        description="N2V2: anti-aliased down-sampling (max over 2 pixels at stride 1, then "
        "a [1,2,1] blur at stride 2) instead of max-pooling, against checkerboard artefacts.",
    )
    top_skip: bool = Field(
        True,
        description="The skip connection at full resolution; N2V2 drops it (False), so "
        "the output cannot copy the input's pixel-level patterns.",
    )
    blind_filter: int | None = Field(
        None,
        ge=0,
        le=8,
        description="Denoisers: radius of a learned linear filter that skips the centre "
        "pixel (starts as a Gaussian blur of width 1), added to the mean output, so the "
        "network learns a correction to a blind-spot blur instead of the image from "
        "nothing. Default (unset): 3 for train n2v, 0 for train joint, where it cost the "
        "segmentation (issue 16). 0: none, the paper's network; segmenters: always 0.",
    )
    xy_only_levels: int = Field(
        0,
        ge=0,
        le=5,
        description="3-D, anisotropic voxels: the first this many levels pool and upsample "
        "in Y/X only, about log2(Z spacing / Y-X spacing) (1 for 0.32x0.32x1 µm).",
    )

    @model_validator(mode="after")
    def _check_groups(self) -> UNetConfig:
        if self.out_channels % self.groups:
            raise ValueError(
                f"channels 'separate' gives each of the {self.in_channels} input channels "
                f"its own outputs; {self.out_channels} output channels do not divide among "
                "them (use channels 'together')"
            )
        return self

    @model_validator(mode="after")
    def _check_levels(self) -> UNetConfig:
        if self.xy_only_levels > (self.depth if self.dims == 3 else 0):
            raise ValueError(
                f"xy_only_levels {self.xy_only_levels} needs a 3-D network of at least that "
                f"depth (dims {self.dims}, depth {self.depth})"
            )
        return self

    @property
    def groups(self) -> int:
        """Independent sub-networks: one per input channel when channels are separate."""
        return self.in_channels if self.channels == "separate" else 1

    @property
    def size_multiple(self) -> int:
        """Y/X sizes the network runs on without padding: multiples of 2**depth."""
        return 2**self.depth

    @property
    def z_pooling(self) -> tuple[bool, ...]:
        """Per level, whether pooling also halves Z (3-D only; the first
        ``xy_only_levels`` do not)."""
        return tuple(level >= self.xy_only_levels for level in range(self.depth))

    @property
    def z_multiple(self) -> int:
        """Z sizes a 3-D network runs on without padding: 2**(levels that pool in Z)."""
        return 2 ** sum(self.z_pooling)

    @property
    def min_size(self) -> int:
        """Smallest Y/X side accepted: one pooling cell at the bottom level, and at least 8."""
        return max(self.size_multiple, 8)

    @property
    def min_size_z(self) -> int:
        """Fewest Z slices a 3-D network trains on: one bottom pooling cell, at least 3
        (a voxel needs neighbours above and below)."""
        return max(self.z_multiple, 3)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context on each side (Y/X) that can influence one output pixel.

        Each level ``l`` adds two 3x3 convolutions at scale ``2**l`` on the way down and
        on the way up; pooling and upsampling add at most ``2**l - 1`` each, and a
        blur-pool's window and blur ``2**l`` more.
        """
        radius = _receptive_radius((True,) * self.depth, blur=self.blur_pool)
        return max(radius, self.blind_filter or 0)

    @property
    def receptive_radius_z(self) -> int:
        """Like ``receptive_radius``, along Z of a 3-D network (smaller where levels
        pool in Y/X only, since their Z scale does not grow)."""
        return max(_receptive_radius(self.z_pooling, blur=self.blur_pool), self.blind_filter or 0)

    def with_blind_filter(self, radius: int) -> UNetConfig:
        """This config with the training mode's ``radius`` where ``blind_filter`` is unset;
        a value the user set stays."""
        if self.blind_filter is not None:
            return self
        return self.model_copy(update={"blind_filter": radius})


def _receptive_radius(pools: tuple[bool, ...], *, blur: bool = False) -> int:
    """Context radius along one axis, given per level whether that axis is pooled."""
    radius, scale = 0, 1
    for pooled in pools:
        radius += 2 * 2 * scale + ((4 if blur else 2) * scale if pooled else 0)
        scale *= 2 if pooled else 1
    return radius + 2 * scale


class MaskingConfig(_Config):
    """How a denoiser learns from noisy images alone: blind-spot masking for Noise2Void
    (paper §2.1, Fig. 2), or Neighbor2Neighbor's pairs of sub-images (no mask)."""

    objective: Literal["n2v", "neighbor2neighbor"] = Field(
        "n2v",
        description="n2v: predict masked pixels from their neighbours (the paper; the "
        "other masking settings); neighbor2neighbor: predict one pixel of every 2x2 cell "
        "from another (Huang et al. 2021; training/neighbor2neighbor.py): every pixel "
        "trains, one pass denoises, no learned noise model. 2-D only.",
    )
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
        DEFAULT_PIXELS_PER_MASK,
        gt=1.0,
        description="Grid mode: one masked pixel per this many pixels (paper: "
        "256^2/169, about 388).",
    )
    n_masked: int | None = Field(
        None, ge=1, description="Grid mode: masked pixels per image, overriding the density."
    )
    patch_size: int = Field(64, ge=8, description="Patch mode: side of the random patches.")
    patch_fraction: float = Field(
        0.002, gt=0.0, le=0.25, description="Patch mode: fraction of pixels masked."
    )

    @property
    def blind_spot(self) -> bool:
        """Whether the objective hides each pixel from its own prediction (n2v): only
        then has the network a blind-spot error to blend back and a noise model to learn."""
        return self.objective == "n2v"

    def min_image_side(self, network_min: int) -> int:
        """The smallest image side this objective trains a network of ``network_min`` on:
        Neighbor2Neighbor feeds it half-size sub-images."""
        return network_min * (1 if self.blind_spot else 2)

    def grid_shape(self, *sizes: int) -> tuple[int, ...]:
        """Grid cells per axis for an image (Y, X) or volume (Z, Y, X): the paper's
        density unless a count is set.

        In 3-D the same density counts voxels (one masked voxel per ~388, a cell of
        about 7.3 voxels a side), so the share of masked inputs, and with it the
        blind-spot training signal per voxel, matches the 2-D default; cells are cubes
        in voxels, fewer along a short axis.
        """
        volume = math.prod(sizes)
        target = self.n_masked if self.n_masked is not None else volume / self.pixels_per_mask
        target = max(1.0, float(target))
        cell = (volume / target) ** (1 / len(sizes))
        return tuple(min(size, max(1, round(size / cell))) for size in sizes)


class NoiseConfig(_Config):
    """The noise model an N2V denoiser learns with it (models/noise_model.py): with one,
    ``denoise`` combines the blind-spot prediction with the observed pixel, per pixel,
    without being told the noise level."""

    model: Literal["auto", "none", "gaussian", "poisson-gaussian"] = Field(
        "auto",
        description="none: the blind-spot prediction alone; gaussian: noise of one "
        "variance (EM, natural images); poisson-gaussian: variance growing with the "
        "signal (fluorescence; it falls back to gaussian where no growth shows); auto: "
        "poisson-gaussian for 2-D networks, none for 3-D (2-D only so far). Adds a "
        "variance head to the network.",
    )

    def resolved(self, dims: int) -> NoiseConfig:
        """``auto`` made concrete for a network of ``dims`` spatial dimensions."""
        if self.model != "auto":
            return self
        return self.model_copy(update={"model": "poisson-gaussian" if dims == 2 else "none"})

    quantile: float = Field(
        0.02,
        gt=0.0,
        lt=0.5,
        description="Share of training pixels whose predicted variance is taken as pure "
        "noise (the lower envelope; denoise uses it with --noise-estimate envelope).",
    )
    estimate: Literal["patches", "envelope"] = Field(
        "patches",
        description="Where denoise's noise variance comes from: patches: the noisy "
        "training images' patch statistics (PCA, per brightness for poisson-gaussian); "
        "envelope: the variance head's lower envelope. envelope leaves more of the "
        "observed pixel, which scores better against references that carry noise of "
        "their own (the Lucchi EM slices).",
    )


class TrainConfig(_Config):
    """How long and how to train; stored in the model file for provenance."""

    steps: int | None = Field(None, ge=1, description="Optimiser steps to run.")
    max_minutes: float | None = Field(
        None, gt=0.0, description="Stop after this wall-clock time (and still write a model)."
    )
    batch_size: int | None = Field(
        None, ge=1, description="Images (grid) or patches (patch) per step; default by mode."
    )
    learning_rate: float = Field(
        1e-3, gt=0.0, le=1.0, description="Adam learning rate (the paper's: 4e-4)."
    )
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="Learning-rate schedule over the planned steps."
    )
    seed: int = Field(0, ge=0, description="Seed for weights, masking, sampling, splits.")
    val_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Fraction of images held out for validation (3-D, fewer volumes than "
        "that takes: a slab of this share along each volume's longest axis).",
    )
    val_every: int = Field(200, ge=1, description="Validate every this many steps.")
    checkpoint_every: int = Field(500, ge=1, description="Checkpoint every this many steps.")
    crop_size: int | None = Field(
        None,
        ge=8,
        description="Grid mode: train on random square crops of this side "
        "instead of full images (default: full images up to 2048x2048 pixels, 1024x1024 "
        "crops of larger ones); 3-D: the Y/X side of the crops (default 64).",
    )
    crop_depth: int | None = Field(
        None,
        ge=1,
        description="3-D: Z side of the random training crops (default 32; Y/X side: "
        "--crop-size, default 64); a smaller volume is used whole.",
    )
    augment: bool = Field(
        True,
        description="Random rotations/flips (the 8 of paper §3.1; 3-D: those 8 in Y/X "
        "times a Z flip, which keep anisotropic voxels as they are).",
    )
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="Where to train.")
    devices: int = Field(
        1,
        ge=1,
        description="Training processes on each machine (one per GPU); more than one trains "
        "with DDP, each process on its share of the images, and the batch per step becomes "
        "devices x num-nodes x batch-size (docs/distributed.md).",
    )
    num_nodes: int = Field(
        1,
        ge=1,
        description="Machines taking part in a DDP run, each running --devices processes "
        "(launched by SLURM srun or torchrun; docs/distributed.md).",
    )
    stream: bool | None = Field(
        None,
        description="Read Zarr/TIFF training images lazily, crop by crop, so memory follows "
        "the crops and --cache-mb, not the data (2-D: crops of --crop-size, default 256); "
        "default: stream when the images' float32 size exceeds 2 GiB.",
    )
    cache_mb: int = Field(
        512, ge=16, description="Streamed training: memory for decoded chunks, in MiB."
    )


DEFAULT_CROP_3D = (32, 64, 64)


def crop_shape(train: TrainConfig, dims: int) -> tuple[int, ...] | None:
    """Training crop per spatial axis: 2-D full images unless ``crop_size`` is set;
    3-D always crops (default 32x64x64), since whole volumes rarely fit one step."""
    if dims == 2:
        return None if train.crop_size is None else (train.crop_size,) * 2
    side = train.crop_size or DEFAULT_CROP_3D[1]
    return (train.crop_depth or DEFAULT_CROP_3D[0], side, side)


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


def _one_line(error: Exception) -> str:
    """YAML errors span lines (with a caret under the culprit); errors here are one line."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(error).split())


def save_yaml(config: _Config, path: str | Path) -> None:
    """Write a config as YAML (human-editable, round-trips through ``load_yaml``)."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))


def load_yaml(config_type: type[_Config], path: str | Path) -> _Config:
    """Read a YAML config; safe_load only, nothing in it is executed."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"{path}: cannot read YAML config: {_one_line(e)}") from e
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a mapping of settings, found {type(values).__name__}")
    return parse(config_type, values, source=str(path))


SegLoss = Literal["bce", "dice", "bce+dice", "mse"]
SegTarget = Literal["foreground", "instances"]  # see semdenoise.models.targets
SegInput = Literal["denoised", "both"]  # a joint segmenter's input


class SegConfig(_Config):
    """What a segmenter trained on its own learns (paper §2.2; §2.3 for a style segmenter)."""

    loss: SegLoss = Field("bce", description="bce, dice, bce+dice, or mse (a style segmenter).")
    target: SegTarget = Field(
        "foreground",
        description="foreground (masks: any non-zero label) or instances (background / "
        "interior / boundary, to separate touching objects; loss bce).",
    )


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
    segment_target: SegTarget = Field(
        "foreground",
        description="Supervised: what the segmenter learns: foreground (the paper's masks) "
        "or instances (background / interior / boundary, to separate touching objects).",
    )
    segment_input: SegInput = Field(
        "denoised",
        description="Supervised: what the segmenter sees: the denoised image (the paper's "
        "cascade) or both, the noisy and the denoised image as channels.",
    )
    labelled_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Supervised, partial labels: share of the steps whose batch comes from "
        "the labelled images only (the others draw from every image).",
    )
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


# A run's settings file: one section per config, named as the training functions name
# their config arguments.
SECTIONS: dict[str, type[_Config]] = {
    "train": TrainConfig,
    "unet": UNetConfig,
    "masking": MaskingConfig,
    "joint": JointConfig,
    "seg": SegConfig,
    "noise": NoiseConfig,
}

Settings = Mapping[str, Mapping[str, Any]]
"""Field values by section, e.g. ``{"train": {"steps": 100}, "unet": {"depth": 3}}``."""


def read_settings(path: str | Path) -> dict[str, dict[str, Any]]:
    """A run's settings from a YAML file of sections; safe_load only, nothing is executed.

    Only the shape is checked here; which sections and fields a command takes, and their
    values, are checked by :func:`resolve_settings`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(f"{path}: cannot read YAML config: {_one_line(e)}") from e
    if not isinstance(document, dict):
        raise InputError(
            f"{path}: expected sections of settings ({', '.join(SECTIONS)}), "
            f"found {type(document).__name__}"
        )
    settings = {}
    for section, values in document.items():
        if values is None:  # "masking:" with nothing under it
            values = {}
        if not isinstance(values, dict):
            raise InputError(
                f"{path}: {section}: expected a mapping of settings, found {type(values).__name__}"
            )
        settings[str(section)] = values
    return settings


def resolve_settings(
    takes: Mapping[str, Collection[str]],
    layers: Sequence[tuple[str, Settings]],
    *,
    command: str,
) -> dict[str, _Config]:
    """One validated config per section of ``takes``, from layers of settings.

    Later layers win field by field, and fields no layer sets keep their config default
    (the CLI passes defaults < preset < file < options). ``takes`` names the fields of
    each section that ``command`` takes; anything else is an error. Each layer is
    ``(source, settings)``, ``source`` naming it in errors with ``{section}`` standing
    for the section (``"run.yaml: {section}"``), so a bad value is reported where it
    was written: ``run.yaml: train: learning_rate: Input should be greater than 0``.
    """
    for source, settings in layers:
        for section, values in settings.items():
            where = source.replace("{section}", str(section))
            if section not in takes:
                raise InputError(
                    f"{where}: not a section {command} takes (it takes {', '.join(takes)})"
                )
            for field in values:
                if field not in takes[section]:
                    raise InputError(f"{where}: {field}: not a setting {command} takes")
    configs = {}
    for section in takes:
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        last = "defaults"
        for source, settings in layers:
            if settings.get(section):
                last = source.replace("{section}", section)
            for field, value in settings.get(section, {}).items():
                values[field] = value
                origin[field] = source.replace("{section}", section)
        config_type = SECTIONS[section]
        try:
            configs[section] = config_type(**values)
        except ValidationError as e:
            first = e.errors()[0]
            loc = first["loc"]
            # a field's error names the layer that set it; a check across fields, the
            # last layer that set any of the section
            source = origin.get(str(loc[0]), last) if loc else last
            where = ".".join(str(p) for p in loc) or config_type.__name__
            raise InputError(f"{source}: {where}: {first['msg']}") from e
    return configs


def dump_settings(configs: Mapping[str, _Config], takes: Mapping[str, Collection[str]]) -> str:
    """The YAML that :func:`read_settings` reads back into ``configs``: every field of
    ``takes``, defaults included, so a later change of a default cannot change a rerun."""
    document = {
        section: configs[section].model_dump(include=set(fields))
        for section, fields in takes.items()
    }
    return yaml.safe_dump(document, sort_keys=False)


# ----- Presets -------------------------------------------------------------------------
# Named, measured settings: ``semdenoise train ... --preset NAME``.
#
# A preset is a plain dict of settings by section (``unet``, ``train``, ``masking``), like
# a ``--config`` YAML file; fields it does not name keep their config defaults.
#
# - ``cpu``: measured to train well on a small CPU (see benchmarks/em_n2v.py). Depth 3
#   with 16 base channels and direct (not residual) output: on 2 CPU cores it takes about
#   3x the steps per minute of the paper's 32-channel network and reached a higher PSNR
#   within minutes on EM; learning rate 1e-3, the top of the paper's range. The
#   experiments train with it (``cpu_unet()``, ``cpu_training()``), and the config
#   defaults follow it since issue 16 (benchmarks/denoiser_defaults.py).
# - ``paper``: the paper's configuration: residual U-Net of depth 2 and 32 base channels
#   (§2.1, Tab. 1), Adam at 4e-4 (§3.3), grid masking of 169 pixels per 256x256 image
#   replaced by a neighbour in a 5x5 window (§3.2), and no learned noise model.

CPU_UNET = {"depth": 3, "base_channels": 16, "residual": False}

# The denoiser's blind-spot blur where none is set (UNetConfig.blind_filter unset), by
# training mode (docs/benchmarks.md, issue 16): for N2V +1.5 dB on Set12, +0.8 on FMD
# development fields, level on EM; in joint training it cost AP in every seed of the
# few-labels nuclei benchmark, so there it stays off.
MODE_BLIND_FILTER = {"n2v": 3, "joint": 0}
CPU_LEARNING_RATE = 1e-3

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {"unet": CPU_UNET, "train": {"learning_rate": CPU_LEARNING_RATE}},
    "paper": {
        "unet": {"depth": 2, "base_channels": 32, "residual": True, "blind_filter": 0},
        "train": {"learning_rate": 4e-4},
        "masking": {
            "mode": "grid",
            "replacement": "neighbour",
            "radius": 2,
            "pixels_per_mask": PAPER_IMAGE_SIDE**2 / PAPER_GRID_CELLS**2,
        },
        "noise": {"model": "none"},
    },
    # N2V2 (Höck et al. 2022): blur-pool, no top skip connection, median replacement
    "n2v2": {
        "unet": {"blur_pool": True, "top_skip": False},
        "masking": {"replacement": "median"},
    },
}


def preset(name: str) -> dict[str, dict[str, Any]]:
    """A copy of the preset's settings by section; an unknown name is a one-line error."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


# The experiments' N2V learns no noise model: the same denoiser as the joint model's, so
# that "N2V vs joint" compares the training alone. They mask at the paper's density.
NO_NOISE_MODEL = NoiseConfig(model="none")
PAPER_MASKING = MaskingConfig(pixels_per_mask=PAPER_IMAGE_SIDE**2 / PAPER_GRID_CELLS**2)


def cpu_unet(**overrides) -> UNetConfig:
    """The CPU preset's architecture, with any field overridden. The experiments and the
    N2V baselines train it without the blind-spot blur (train n2v's default since issue 16): their
    published numbers were measured so, and a baseline should stay plain N2V."""
    return UNetConfig(**{**CPU_UNET, "blind_filter": 0, **overrides})


def cpu_training(steps: int, seed: int = 0, **overrides) -> TrainConfig:
    """A run of ``steps`` optimiser steps at the preset's learning rate: the same seed and
    steps give the same model whatever else the machine runs (what the project reports
    always trains this way; ``max_minutes`` in ``overrides`` is a user's convenience)."""
    return TrainConfig(steps=steps, seed=seed, learning_rate=CPU_LEARNING_RATE, **overrides)
