"""Seeded sets of synthetic images for the two related tasks, with their noise.

Image ``i`` of a set depends only on (task, seed, i, size, noise), not on how many
images are asked for, so a quick run's images are the first images of a full run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from semdenoise.synth.mesoscopic import add_poisson_gaussian, plaques_image, somata_image

Task = Literal["somata", "plaques"]

GENERATORS = {"somata": somata_image, "plaques": plaques_image}


@dataclass(frozen=True)
class NoiseSettings:
    """Poisson–Gaussian noise: photons per intensity unit, read noise, correlation."""

    photons_per_unit: float
    read_sigma: float
    correlation: float = 0.0


# somata: the cleaner, labelled related task; plaques: the noisier target task
DEFAULT_NOISE: dict[str, NoiseSettings] = {
    "somata": NoiseSettings(photons_per_unit=1.0, read_sigma=3.0),
    "plaques": NoiseSettings(photons_per_unit=0.25, read_sigma=6.0),
}


@dataclass(frozen=True)
class SyntheticSet:
    """Stacks (N, Y, X) or (N, Z, Y, X) of clean and noisy images, masks and instances."""

    task: str
    clean: np.ndarray
    noisy: np.ndarray
    masks: np.ndarray
    instances: np.ndarray
    noise: NoiseSettings
    seed: int
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clean)

    def subset(self, indices: slice | list[int]) -> SyntheticSet:
        return SyntheticSet(
            task=self.task,
            clean=self.clean[indices],
            noisy=self.noisy[indices],
            masks=self.masks[indices],
            instances=self.instances[indices],
            noise=self.noise,
            seed=self.seed,
            meta=self.meta,
        )

    @property
    def data_range(self) -> float:
        """The clean images' intensity range, for PSNR/SSIM."""
        return float(self.clean.max() - self.clean.min())


def make_set(
    task: Task,
    n: int,
    *,
    size: int = 256,
    depth: int | None = None,
    seed: int = 0,
    noise: NoiseSettings | None = None,
    first: int = 0,
    z_spacing: float = 3.0,
) -> SyntheticSet:
    """``n`` seeded images (``depth`` slices each for stacks) of ``task`` with their noise.

    ``first`` skips the first images of the sequence: ``make_set(t, 4, first=8)`` gives
    images 8–11 of the same seed, disjoint from ``make_set(t, 8)``.
    """
    if task not in GENERATORS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(GENERATORS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    noise = noise or DEFAULT_NOISE[task]
    shape = (size, size) if depth is None else (depth, size, size)
    scenes, noisy = [], []
    for index in range(first, first + n):
        entropy = [seed, index, list(GENERATORS).index(task)]
        scene_rng, noise_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(2)
        )
        scene = GENERATORS[task](shape, rng=scene_rng, z_spacing=z_spacing)
        scenes.append(scene)
        noisy.append(
            add_poisson_gaussian(
                scene.clean,
                photons_per_unit=noise.photons_per_unit,
                read_sigma=noise.read_sigma,
                correlation=noise.correlation,
                rng=noise_rng,
            )
        )
    return SyntheticSet(
        task=task,
        clean=np.stack([s.clean for s in scenes]),
        noisy=np.stack(noisy),
        masks=np.stack([s.mask for s in scenes]),
        instances=np.stack([s.instances for s in scenes]),
        noise=noise,
        seed=seed,
        meta={"size": size, "depth": depth, "first": first, "z_spacing": z_spacing},
    )
