"""Synthetic mesoscopic (optical, whole-brain style) images: somata, neurites, debris.

Every image comes with its clean version and a target mask, so every metric can be
computed. Noise is Poisson–Gaussian: shot noise at a photon level plus read noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class SyntheticImage:
    clean: np.ndarray  # float32, photons-like intensity scale
    mask: np.ndarray  # uint8 {0, 1}: the target structures


def somata_image(
    shape: tuple[int, int] = (256, 256),
    *,
    rng: np.random.Generator,
    n_somata: int = 12,
    n_neurites: int = 6,
    n_debris: int = 4,
) -> SyntheticImage:
    """Bright elliptical somata on an uneven background with thin neurites and debris."""
    height, width = shape
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    background = gaussian_filter(rng.normal(0, 1, shape), sigma=min(shape) / 6)
    background = 20.0 + 15.0 * (background - background.min()) / (np.ptp(background) + 1e-9)
    signal = np.zeros(shape, np.float32)
    mask = np.zeros(shape, bool)
    for _ in range(n_somata):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(4, 9, size=2)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dy * np.cos(angle) + dx * np.sin(angle)
        v = -dy * np.sin(angle) + dx * np.cos(angle)
        inside = (u / ry) ** 2 + (v / rx) ** 2 <= 1.0
        signal[inside] += rng.uniform(60, 120)
        mask |= inside
    for _ in range(n_neurites):  # a smooth random walk, one pixel wide, then blurred
        y, x = rng.uniform(0, height), rng.uniform(0, width)
        heading = rng.uniform(0, 2 * np.pi)
        trace = np.zeros(shape, np.float32)
        for _ in range(int(1.5 * max(shape))):
            heading += rng.normal(0, 0.15)
            y, x = y + np.sin(heading), x + np.cos(heading)
            if not (0 <= y < height and 0 <= x < width):
                break
            trace[int(y), int(x)] = 1.0
        signal += rng.uniform(25, 50) * np.minimum(gaussian_filter(trace, 0.8) * 4.0, 1.0)
    for _ in range(n_debris):  # small, very bright, not a target ("false signals", §2.3)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        signal += rng.uniform(150, 250) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
    clean = gaussian_filter(background + signal, sigma=1.0).astype(np.float32)
    return SyntheticImage(clean=clean, mask=mask.astype(np.uint8))


def add_poisson_gaussian(
    clean: np.ndarray, *, photons_per_unit: float, read_sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Shot noise (``clean * photons_per_unit`` photons) plus Gaussian read noise.

    Returned in the clean image's scale, float32, not clipped.
    """
    photons = rng.poisson(np.clip(clean, 0, None) * photons_per_unit) / photons_per_unit
    return (photons + rng.normal(0, read_sigma, clean.shape)).astype(np.float32)
