"""Named, measured settings: ``semdenoise train ... --preset NAME``.

A preset is a plain dict of settings by section (``unet``, ``train``, ``masking``), like
a ``--config`` YAML file; fields it does not name keep their config defaults.

- ``cpu``: measured to train well on a small CPU (see benchmarks/em_n2v.py). Depth 3
  with 16 base channels and direct (not residual) output: on 2 CPU cores it takes about
  3x the steps per minute of the 32-channel default and reached a higher PSNR within
  minutes on EM; learning rate 1e-3, the top of the paper's range. The experiments train
  with it (``cpu_unet()``, ``cpu_training()``).
- ``paper``: the paper's configuration, which the config defaults follow: residual
  U-Net of depth 2 and 32 base channels (§2.1, Tab. 1), Adam at 4e-4 (§3.3), grid
  masking of 169 pixels per 256x256 image replaced by a neighbour in a 5x5 window (§3.2).
"""

from __future__ import annotations

import copy
from typing import Any

from semdenoise.config import PAPER_GRID_CELLS, PAPER_IMAGE_SIDE, TrainConfig, UNetConfig
from semdenoise.errors import InputError

CPU_UNET = {"depth": 3, "base_channels": 16, "residual": False}
CPU_LEARNING_RATE = 1e-3

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {"unet": CPU_UNET, "train": {"learning_rate": CPU_LEARNING_RATE}},
    "paper": {
        "unet": {"depth": 2, "base_channels": 32, "residual": True},
        "train": {"learning_rate": 4e-4},
        "masking": {
            "mode": "grid",
            "replacement": "neighbour",
            "radius": 2,
            "pixels_per_mask": PAPER_IMAGE_SIDE**2 / PAPER_GRID_CELLS**2,
        },
    },
}


def preset(name: str) -> dict[str, dict[str, Any]]:
    """A copy of the preset's settings by section; an unknown name is a one-line error."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def cpu_unet(**overrides) -> UNetConfig:
    """The CPU preset's architecture, with any field overridden."""
    return UNetConfig(**{**CPU_UNET, **overrides})


def cpu_training(steps: int, seed: int = 0, **overrides) -> TrainConfig:
    """A run of ``steps`` optimiser steps at the preset's learning rate: the same seed and
    steps give the same model whatever else the machine runs (what the project reports
    always trains this way; ``max_minutes`` in ``overrides`` is a user's convenience)."""
    return TrainConfig(steps=steps, seed=seed, learning_rate=CPU_LEARNING_RATE, **overrides)
