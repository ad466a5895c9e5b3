"""The classical noise estimate from patches (models/patch_noise.py): Gaussian noise on
a structured image, and noise that grows with the signal."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from semdenoise.models.patch_noise import fit_patch_noise_model, pca_noise_variance, sample_patches


def _scene(rng: np.random.Generator, side: int = 192) -> np.ndarray:
    """Smooth blobs and sharp-edged squares in [0, 1]: structure, no noise."""
    scene = gaussian_filter(rng.random((side, side)), 6)
    scene = (scene - scene.min()) / np.ptp(scene)
    for _ in range(12):
        y, x = rng.integers(0, side - 24, 2)
        scene[y : y + 24, x : x + 24] = rng.random()
    return scene


def test_gaussian_noise_variance_is_found_under_structure():
    rng = np.random.default_rng(0)
    scenes = [_scene(rng) for _ in range(3)]
    for sigma in (0.02, 0.1):
        noisy = [s + rng.normal(0, sigma, s.shape) for s in scenes]
        fitted = fit_patch_noise_model(noisy, "gaussian", max_patches=60_000)
        assert fitted.kind == "gaussian" and fitted.slope == 0.0
        assert fitted.offset == pytest.approx(sigma**2, rel=0.15)
    # the structure alone is not taken for noise
    clean = fit_patch_noise_model(scenes, "gaussian", max_patches=60_000)
    assert clean.offset < 0.1 * 0.02**2 + 1e-6


def test_poisson_gaussian_noise_is_a_rising_line():
    rng = np.random.default_rng(1)
    scenes = [4 * _scene(rng) for _ in range(3)]
    offset, slope = 0.01, 0.02  # variance 0.01 + 0.02 * signal
    noisy = [s + rng.normal(0, 1, s.shape) * np.sqrt(offset + slope * s) for s in scenes]
    fitted = fit_patch_noise_model(noisy, "poisson-gaussian", max_patches=100_000)
    assert fitted.slope == pytest.approx(slope, rel=0.25)
    assert fitted.offset == pytest.approx(offset, abs=0.01)
    # Gaussian noise seen as Poisson–Gaussian: no slope invented
    flat = fit_patch_noise_model(
        [s + rng.normal(0, 0.1, s.shape) for s in scenes], "poisson-gaussian", max_patches=60_000
    )
    assert flat.slope == 0.0
    assert flat.offset == pytest.approx(0.01, rel=0.2)


def test_pure_noise_patches_give_their_variance_and_small_images_are_refused():
    rng = np.random.default_rng(2)
    assert pca_noise_variance(rng.normal(0, 0.5, (20_000, 49))) == pytest.approx(0.25, rel=0.05)
    with pytest.raises(ValueError, match="7x7"):
        sample_patches([np.zeros((5, 40))], rng=rng)
