"""Settings measured to train well on a small CPU (see benchmarks/em_n2v.py).

Depth 3 with 16 base channels and direct (not residual) output: on 2 CPU cores it
takes about 3x the steps per minute of the 32-channel default and reached a higher
PSNR within minutes on EM; learning rate 1e-3, the top of the paper's range.
"""

from __future__ import annotations

from semdenoise.config import TrainConfig, UNetConfig

CPU_UNET = {"depth": 3, "base_channels": 16, "residual": False}
CPU_LEARNING_RATE = 1e-3


def cpu_unet(**overrides) -> UNetConfig:
    """The CPU preset's architecture, with any field overridden."""
    return UNetConfig(**{**CPU_UNET, **overrides})


def cpu_training(steps: int, seed: int = 0, **overrides) -> TrainConfig:
    """A run of ``steps`` optimiser steps at the preset's learning rate: the same seed and
    steps give the same model whatever else the machine runs (what the project reports
    always trains this way; ``max_minutes`` in ``overrides`` is a user's convenience)."""
    return TrainConfig(steps=steps, seed=seed, learning_rate=CPU_LEARNING_RATE, **overrides)
