"""The noise level of noisy images from the principal components of their patches.

Natural and microscopy images are redundant: their patches span far fewer directions
than a patch has pixels, while pixel-independent noise adds the same variance to every
direction. So the smallest eigenvalues of the patch covariance are noise alone. Chen et
al. ("An efficient statistical method for image noise level estimation", ICCV 2015)
take the mean of the trailing eigenvalues at the first cut where that mean is no larger
than their median (a set of pure-noise eigenvalues is roughly symmetric; signal makes
the head of the spectrum skewed). For noise that grows with the signal (shot noise:
Poisson–Gaussian, fluorescence), the same estimate in bins of patch brightness, and a
line through them.

Why a classical estimate beside the learned one (models/noise_model.py): the posterior
weighs the observed pixel by 1 − n²/R, where R is what the blind-spot prediction misses
(predict/denoise.py); n² must then be the noise itself, not the variance head's lower
envelope, which sits on the head's own scale and misjudged fluorescence (measured:
docs/benchmarks.md, "The posterior weight").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from semdenoise.models.noise_model import NoiseKind, NoiseModel, equal_bins

PATCH = 7
MAX_PATCHES = 200_000
BRIGHTNESS_BINS = 12
# shot noise must raise the variance by this share of its median from the darkest bin
# to the brightest to count: less is within the scatter of per-bin estimates (Gaussian
# noise on Set12 gave a line rising 8 %, which cost 0.06 dB against a constant)
MIN_SHOT_RISE = 0.25


def pca_noise_variance(patches: np.ndarray) -> float:
    """The noise variance in (N, P) flattened patches: the mean of the trailing
    eigenvalues of their covariance at the first cut where it is no larger than their
    median (Chen et al. 2015)."""
    covariance = np.cov(np.asarray(patches, dtype=np.float64), rowvar=False)
    eigenvalues = np.sort(np.linalg.eigvalsh(covariance))[::-1]
    for start in range(len(eigenvalues)):
        tail = eigenvalues[start:]
        if tail.mean() <= np.median(tail):
            return float(max(tail.mean(), 0.0))
    return float(max(eigenvalues[-1], 0.0))


def sample_patches(
    images: Sequence[np.ndarray],
    *,
    patch: int = PATCH,
    max_patches: int = MAX_PATCHES,
    rng: np.random.Generator,
) -> np.ndarray:
    """(N, patch²) patches at random places of 2-D ``images``, about ``max_patches`` in
    all, each image contributing in proportion to its area."""
    usable = [np.asarray(i, dtype=np.float32) for i in images]
    usable = [i for i in usable if min(i.shape) >= patch]
    if not usable:
        raise ValueError(f"no image of at least {patch}x{patch} pixels to estimate noise from")
    areas = np.array([math.prod(i.shape) for i in usable], dtype=np.float64)
    counts = np.maximum(1, np.round(max_patches * areas / areas.sum())).astype(int)
    chunks = []
    for image, count in zip(usable, counts, strict=True):
        windows = sliding_window_view(image, (patch, patch))
        ys = rng.integers(0, windows.shape[0], count)
        xs = rng.integers(0, windows.shape[1], count)
        chunks.append(windows[ys, xs].reshape(count, patch * patch))
    return np.concatenate(chunks)


def fit_patch_noise_model(
    images: Sequence[np.ndarray],
    kind: NoiseKind,
    *,
    patch: int = PATCH,
    bins: int = BRIGHTNESS_BINS,
    max_patches: int = MAX_PATCHES,
    seed: int = 0,
) -> NoiseModel:
    """The noise variance of 2-D ``images`` in their own units: one value (Gaussian), or
    a line in the signal through per-brightness-bin estimates (Poisson–Gaussian). A line
    that does not rise by ``MIN_SHOT_RISE`` of the bins' median variance across them
    means no shot noise shows: the one value of all patches then."""
    patches = sample_patches(
        images, patch=patch, max_patches=max_patches, rng=np.random.default_rng(seed)
    )
    if kind == "gaussian":
        return NoiseModel("gaussian", pca_noise_variance(patches))
    brightness = patches.mean(axis=1)
    which, count = equal_bins(brightness, bins)
    centres, variances = [], []
    for b in range(count):
        inside = which == b
        if inside.sum() >= 5 * patch * patch:  # enough patches for a stable covariance
            centres.append(float(np.median(brightness[inside])))
            variances.append(pca_noise_variance(patches[inside]))
    if len(centres) >= 2:
        slope, offset = np.polyfit(centres, variances, 1)
        if slope * (centres[-1] - centres[0]) >= MIN_SHOT_RISE * np.median(variances):
            return NoiseModel("poisson-gaussian", float(offset), float(slope))
    return NoiseModel("poisson-gaussian", pca_noise_variance(patches))
