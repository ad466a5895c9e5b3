"""Shared fixtures: tiny seeded images and tiny networks, so the suite stays fast."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import semdenoise as sd
from semdenoise.cli import main


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


def blobs(shape: tuple[int, ...], rng: np.random.Generator, n: int = 6) -> np.ndarray:
    """Smooth bright discs on a gradient: a clean image with structure to learn."""
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    clean = 20.0 + 10.0 * xx / shape[-1]
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[-2]), rng.uniform(0, shape[-1])
        r = rng.uniform(3, max(4, shape[-1] / 6))
        clean = clean + 100.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    return clean.astype(np.float32)


@pytest.fixture
def noisy_stack() -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) stacks of 3 images of 48x40, Gaussian noise sigma 15."""
    rng = np.random.default_rng(0)
    clean = np.stack([blobs((48, 40), rng) for _ in range(3)])
    noisy = clean + rng.normal(0, 15, clean.shape).astype(np.float32)
    return clean, noisy


@pytest.fixture
def tiny_unet() -> sd.UNetConfig:
    return sd.UNetConfig(depth=2, base_channels=4)


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run the real ``semdenoise`` entry point in-process: ``cli(*args) -> (code, out, err)``."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["semdenoise", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code or 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
