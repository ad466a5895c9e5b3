"""Synthetic mesoscopic (optical, whole-brain style) images with every ground truth.

Two related tasks, as in the paper's unsupervised mode (§2.3, §3.5):

* **somata** — bright, compact, elliptical cell bodies: the cleaner, labelled task a
  style segmenter is pre-trained on;
* **plaques** — amyloid-plaque-like blobs of varied size, shape and brightness (a dense
  core in a diffuse halo, irregular outline): the noisier target task whose labels
  serve only for evaluation.

Both scenes share an uneven background, thin neurites and small, very bright debris
that is *not* a target ("false signals", §2.3); plaque scenes also hold dim somata
that are not targets. Each scene comes with its clean image, the binary target mask
and an instance label image (one integer per target object). 2-D images and ZYX
stacks (objects are ellipsoids; z may be coarser than y/x, like the paper's
0.32×0.32×1 µm voxels). Objects are drawn inside their bounding boxes, so a 256×256
image takes a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates


@dataclass(frozen=True)
class SyntheticImage:
    clean: np.ndarray  # float32, photon-like intensity scale
    mask: np.ndarray  # uint8 {0, 1}: the target structures
    instances: np.ndarray  # uint16: 0 background, 1..N one per target object


def _box(center: np.ndarray, radius: float, shape: tuple[int, ...], spacing: np.ndarray):
    """Slices of the bounding box of a ball of ``radius`` (y/x pixels) around ``center``."""
    reach = np.ceil(radius / spacing).astype(int) + 1
    low = np.maximum(np.floor(center).astype(int) - reach, 0)
    high = np.minimum(np.floor(center).astype(int) + reach + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _local_coords(box: tuple[slice, ...], center: np.ndarray, spacing: np.ndarray):
    """Offsets from ``center`` in y/x-pixel units for every voxel of ``box``."""
    axes = [
        (np.arange(s.start, s.stop, dtype=np.float32) - c) * d
        for s, c, d in zip(box, center, spacing, strict=True)
    ]
    return np.meshgrid(*axes, indexing="ij")


def _random_rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    if ndim == 2:
        angle = rng.uniform(0, np.pi)
        return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _ellipsoid_distance(
    coords: list[np.ndarray], radii: np.ndarray, rotation: np.ndarray
) -> np.ndarray:
    """Normalised distance (1 on the surface) of each voxel to a rotated ellipsoid."""
    rotated = [
        sum(rotation[i, j] * coords[j] for j in range(len(coords))) for i in range(len(coords))
    ]
    return np.sqrt(sum((r / a) ** 2 for r, a in zip(rotated, radii, strict=True)))


def _irregular(distance: np.ndarray, coords: list[np.ndarray], rng: np.random.Generator):
    """Wobble a blob's outline with a few random angular harmonics (plaques are not round)."""
    angle = np.arctan2(coords[-2], coords[-1])
    wobble = np.zeros_like(distance)
    for harmonic in (2, 3, 5):
        wobble += rng.uniform(0.0, 0.12) * np.cos(harmonic * angle + rng.uniform(0, 2 * np.pi))
    return distance * (1.0 + wobble)


class _Canvas:
    """Accumulates signal, target mask and instance labels for one scene."""

    def __init__(self, shape: tuple[int, ...], z_spacing: float) -> None:
        self.shape = shape
        self.spacing = np.array([z_spacing] * (len(shape) - 2) + [1.0, 1.0], np.float32)
        self.signal = np.zeros(shape, np.float32)
        self.mask = np.zeros(shape, bool)
        self.instances = np.zeros(shape, np.uint16)
        self.count = 0

    def random_center(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0, 1, len(self.shape)) * np.array(self.shape)

    def blob(
        self,
        rng: np.random.Generator,
        *,
        radius: tuple[float, float],
        brightness: float,
        target: bool,
        plaque: bool = False,
    ) -> None:
        """An ellipsoid (soma) or a cored, haloed, irregular blob (plaque)."""
        ndim = len(self.shape)
        radii = rng.uniform(*radius, size=ndim).astype(np.float32)
        center = self.random_center(rng)
        reach = radii.max() * (2.2 if plaque else 1.3)
        box = _box(center, reach, self.shape, self.spacing)
        coords = _local_coords(box, center, self.spacing)
        distance = _ellipsoid_distance(coords, radii, _random_rotation(rng, ndim))
        if plaque:
            distance = _irregular(distance, coords, rng)
            core = np.clip(1.0 - distance, 0, None) ** 0.5
            halo = 0.35 * np.exp(-((distance / 1.6) ** 2))
            profile = core + halo * (distance > 0.0)
            inside = distance <= 1.0
        else:
            profile = np.clip(1.2 - distance, 0, 0.2) / 0.2
            inside = distance <= 1.0
        self.signal[box] += brightness * profile.astype(np.float32)
        if target and inside.any():
            self.count += 1
            region = self.instances[box]
            region[inside & (region == 0)] = self.count
            self.mask[box] |= inside

    def neurites(self, rng: np.random.Generator, count: int, brightness: tuple[float, float]):
        """Smooth random walks (turning angle a Gaussian walk), one voxel wide, then blurred."""
        if count == 0:
            return
        steps = int(1.5 * max(self.shape[-2:]))
        trace = np.zeros(self.shape, np.float32)
        for _ in range(count):
            azimuth = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.15, steps))
            direction = [np.sin(azimuth), np.cos(azimuth)]
            if len(self.shape) == 3:  # mostly within the plane, drifting slowly in z
                elevation = np.clip(np.cumsum(rng.normal(0, 0.05, steps)), -0.5, 0.5)
                direction = [np.sin(elevation) / self.spacing[0]] + [
                    d * np.cos(elevation) for d in direction
                ]
            path = self.random_center(rng)[:, None] + np.cumsum(np.array(direction), axis=1)
            index = np.floor(path).astype(int)
            outside = ((index < 0) | (index >= np.array(self.shape)[:, None])).any(axis=0)
            length = int(np.argmax(outside)) if outside.any() else steps
            np.maximum.at(trace, tuple(index[:, :length]), rng.uniform(*brightness))
        self.signal += 2.5 * gaussian_filter(trace, 0.8)

    def debris(self, rng: np.random.Generator, brightness: float) -> None:
        """A tiny, very bright speck: not a target ("false signal")."""
        center = self.random_center(rng)
        box = _box(center, 4.0, self.shape, self.spacing)
        coords = _local_coords(box, center, self.spacing)
        radius2 = sum(c**2 for c in coords)
        self.signal[box] += brightness * np.exp(-radius2 / rng.uniform(1.0, 3.0))


def _background(shape: tuple[int, ...], rng: np.random.Generator, level: tuple[float, float]):
    """Smooth, uneven autofluorescence: low-resolution noise upsampled to the image."""
    coarse = gaussian_filter(rng.normal(0, 1, tuple(max(2, s // 32) for s in shape)), 1.0)
    grid = np.meshgrid(
        *[
            np.linspace(0, c - 1, s, dtype=np.float32)
            for c, s in zip(coarse.shape, shape, strict=True)
        ],
        indexing="ij",
    )
    field = map_coordinates(coarse, grid, order=1, mode="nearest")
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    return (level[0] + (level[1] - level[0]) * field).astype(np.float32)


def _finish(canvas: _Canvas, background: np.ndarray) -> SyntheticImage:
    blur = [0.5] * (len(canvas.shape) - 2) + [1.0, 1.0]  # the optics' point-spread function
    clean = gaussian_filter(background + canvas.signal, sigma=blur).astype(np.float32)
    return SyntheticImage(
        clean=clean, mask=canvas.mask.astype(np.uint8), instances=canvas.instances
    )


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1 or min(shape[-2:]) < 16:
        raise ValueError(f"shape must be (Y, X) or (Z, Y, X) with Y, X >= 16, got {shape}")
    return shape


def _density(shape: tuple[int, ...], per_256: float, rng: np.random.Generator) -> int:
    """Object count scaled with the image area (and depth), Poisson around the mean."""
    scale = shape[-1] * shape[-2] / 256**2 * (shape[0] / 16 if len(shape) == 3 else 1.0)
    return int(rng.poisson(per_256 * scale))


def somata_image(
    shape: tuple[int, ...] = (256, 256),
    *,
    rng: np.random.Generator,
    z_spacing: float = 3.0,
) -> SyntheticImage:
    """Bright elliptical somata (the targets) with neurites and debris, uneven background.

    ``z_spacing`` is the z step in units of the y/x pixel (stacks only).
    """
    shape = _check_shape(shape)
    canvas = _Canvas(shape, z_spacing)
    background = _background(shape, rng, (15.0, 35.0))
    canvas.neurites(rng, _density(shape, 6, rng), (20.0, 45.0))
    for _ in range(max(1, _density(shape, 14, rng))):
        canvas.blob(rng, radius=(4.0, 8.0), brightness=rng.uniform(60, 130), target=True)
    for _ in range(_density(shape, 4, rng)):
        canvas.debris(rng, rng.uniform(150, 260))
    return _finish(canvas, background)


def plaques_image(
    shape: tuple[int, ...] = (256, 256),
    *,
    rng: np.random.Generator,
    z_spacing: float = 3.0,
) -> SyntheticImage:
    """Amyloid-plaque-like blobs (the targets) among dim somata, neurites and debris.

    Plaques vary in size (radius 3–14 px), outline and brightness (some barely above
    the background), so noise and over-smoothing both cost detections.
    """
    shape = _check_shape(shape)
    canvas = _Canvas(shape, z_spacing)
    background = _background(shape, rng, (15.0, 40.0))
    canvas.neurites(rng, _density(shape, 8, rng), (15.0, 40.0))
    for _ in range(_density(shape, 6, rng)):  # dim cells: not targets here
        canvas.blob(rng, radius=(3.5, 6.0), brightness=rng.uniform(20, 40), target=False)
    for _ in range(max(1, _density(shape, 10, rng))):
        small = rng.uniform() < 0.5
        canvas.blob(
            rng,
            radius=(3.0, 6.0) if small else (6.0, 14.0),
            brightness=rng.uniform(35, 140),
            target=True,
            plaque=True,
        )
    for _ in range(_density(shape, 6, rng)):
        canvas.debris(rng, rng.uniform(150, 300))
    return _finish(canvas, background)


def add_poisson_gaussian(
    clean: np.ndarray,
    *,
    photons_per_unit: float,
    read_sigma: float,
    rng: np.random.Generator,
    correlation: float = 0.0,
) -> np.ndarray:
    """Shot noise (``clean * photons_per_unit`` photons) plus Gaussian read noise.

    ``correlation`` > 0 blurs the noise with a Gaussian of that width (pixels, in-plane)
    and rescales it to keep its variance: the spatially correlated noise of real
    detectors and of resampled light-sheet data, which a blind-spot network cannot
    remove because neighbours then predict the noise too. Returned in the clean image's
    scale, float32, not clipped.
    """
    if photons_per_unit <= 0 or read_sigma < 0 or correlation < 0:
        raise ValueError("photons_per_unit must be > 0, read_sigma and correlation >= 0")
    photons = rng.poisson(np.clip(clean, 0, None) * photons_per_unit) / photons_per_unit
    noise = photons - clean + rng.normal(0, read_sigma, clean.shape)
    if correlation > 0:
        sigma = [0.0] * (clean.ndim - 2) + [correlation, correlation]
        impulse = np.zeros([int(8 * correlation) | 1] * 2)
        impulse[impulse.shape[0] // 2, impulse.shape[1] // 2] = 1.0
        gain = np.sqrt((gaussian_filter(impulse, correlation) ** 2).sum())
        noise = gaussian_filter(noise, sigma) / gain
    return (clean + noise).astype(np.float32)
