"""No-reference checks: residual statistics by hand, and a blind-spot loss that ranks
denoisers without the clean image."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from semdenoise.config import PAPER_MASKING
from semdenoise.errors import InputError
from semdenoise.evaluation.no_reference import (
    AUTOCORR,
    BLIND_SPOT,
    NO_REFERENCE_COLUMNS,
    OUTPUT_CORR,
    blind_spot_loss,
    no_reference_checks,
    residual_autocorrelation,
    residual_mean,
    residual_output_correlation,
    unchanged,
)

SIGMA = 10.0


def smooth_image(size: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return 50.0 + 30.0 * np.sin(yy / 9.0) * np.cos(xx / 13.0)


def textured_image(size: int = 96) -> np.ndarray:
    """Fine structure (period 8 px) that a strong blur removes along with the noise."""
    yy, xx = np.mgrid[:size, :size]
    return 50.0 + 40.0 * np.sin(2 * np.pi * yy / 8.0) * np.sin(2 * np.pi * xx / 11.0)


def with_noise(clean: np.ndarray, seed: int = 0) -> np.ndarray:
    return clean + np.random.default_rng(seed).normal(0.0, SIGMA, clean.shape)


def test_the_identity_has_a_zero_residual_and_no_nan():
    noisy = with_noise(smooth_image(32))
    assert residual_mean(noisy, noisy) == 0.0
    assert residual_mean(noisy, noisy, relative=True) == 0.0
    assert residual_autocorrelation(noisy, noisy) == 0.0  # defined: no structure
    assert residual_autocorrelation(noisy, noisy, axis=0) == 0.0
    assert residual_output_correlation(noisy, noisy) == 0.0  # defined: nothing to correlate
    rows = no_reference_checks(noisy, unchanged, repeats=1)
    assert all(np.isfinite(v) for row in rows for v in row.values() if isinstance(v, float))


def test_autocorrelation_by_hand():
    sign = np.where(np.arange(8) % 2, 1.0, -1.0)
    checkerboard = sign[:, None] * sign[None, :]
    zeros = np.zeros((8, 8))
    assert residual_autocorrelation(checkerboard, zeros, axis=0) == pytest.approx(-1.0)
    assert residual_autocorrelation(checkerboard, zeros, axis=1) == pytest.approx(-1.0)
    stripes = np.repeat(sign[:, None], 8, axis=1)  # alternate along Y, constant along X
    assert residual_autocorrelation(stripes, zeros, axis=0) == pytest.approx(-1.0)
    assert residual_autocorrelation(stripes, zeros, axis=1) == pytest.approx(1.0)
    assert residual_autocorrelation(stripes, zeros) == pytest.approx(0.0)


def test_removing_exactly_the_noise_leaves_an_unstructured_residual():
    clean = smooth_image()
    noisy = with_noise(clean)
    for axis in (0, 1, None):
        assert abs(residual_autocorrelation(noisy, clean, axis=axis)) < 0.03
    assert abs(residual_output_correlation(noisy, clean)) < 0.03
    assert residual_mean(noisy, clean, relative=True) == pytest.approx(0.0, abs=0.02)


def test_a_strong_blur_leaves_structure_in_the_residual():
    clean = textured_image()
    noisy = with_noise(clean)
    blurred = gaussian_filter(noisy, 3)
    assert residual_autocorrelation(noisy, blurred) > 0.3
    assert residual_autocorrelation(noisy, blurred) > residual_autocorrelation(noisy, clean) + 0.3
    assert residual_output_correlation(noisy, blurred) > 0.1


def test_flattening_or_exaggerating_contrast_shows_as_correlation_with_the_output():
    noisy = with_noise(smooth_image(32))
    mean = noisy.mean()
    flattened = mean + 0.5 * (noisy - mean)  # residual = half the signal: +1
    exaggerated = mean + 2.0 * (noisy - mean)  # residual = minus the signal: -1
    assert residual_output_correlation(noisy, flattened) == pytest.approx(1.0)
    assert residual_output_correlation(noisy, exaggerated) == pytest.approx(-1.0)


def test_a_constant_offset_shows_in_the_residual_mean_only():
    noisy = with_noise(smooth_image(32))
    brighter = noisy + 5.0
    assert residual_mean(noisy, brighter) == pytest.approx(-5.0)
    assert residual_mean(noisy, brighter, relative=True) == pytest.approx(-5.0 / noisy.std())
    assert residual_autocorrelation(noisy, brighter) == 0.0  # rounding is not structure
    assert residual_output_correlation(noisy, brighter) == 0.0
    single = noisy.astype(np.float32)  # as images are read and denoised
    assert residual_autocorrelation(single, single + np.float32(5.0)) == 0.0


def test_relative_shift_of_a_constant_input():
    flat = np.full((4, 4), 7.0)
    assert residual_mean(flat, flat, relative=True) == 0.0
    assert residual_mean(flat, flat - 1.0, relative=True) == np.inf


def test_a_moderate_filter_beats_doing_nothing_on_the_blind_spot_loss():
    noisy = with_noise(smooth_image())
    identity = blind_spot_loss(noisy, unchanged, repeats=8)
    filtered = blind_spot_loss(noisy, lambda image: gaussian_filter(image, 1.5), repeats=8)
    assert filtered < 0.7 * identity
    # doing nothing predicts a pixel by a neighbour: about twice the noise variance
    assert identity == pytest.approx(2 * SIGMA**2, rel=0.3)


def test_blind_spot_loss_of_the_identity_by_hand():
    noisy = with_noise(smooth_image(64))
    seen: list[np.ndarray] = []

    def recording_identity(image: np.ndarray) -> np.ndarray:
        seen.append(image.copy())
        return image

    loss = blind_spot_loss(noisy, recording_identity, repeats=3, seed=4)
    masked_per_call = int(np.prod(PAPER_MASKING.grid_shape(64, 64)))
    original = noisy.astype(np.float32)
    squared = []
    for masked in seen:
        changed = np.argwhere(masked != original)
        assert len(changed) == masked_per_call  # one pixel per grid cell, none other
        for y, x in changed:  # each took the value of another pixel of its 5x5 window
            window = original[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
            assert masked[y, x] in window
        squared.extend((masked[y, x] - original[y, x]) ** 2 for y, x in changed)
    assert len(seen) == 3
    assert loss == pytest.approx(np.mean(squared), rel=1e-5)


def test_blind_spot_loss_is_reproducible_with_its_seed():
    noisy = with_noise(smooth_image(64))
    filtered = lambda image: gaussian_filter(image, 1.0)  # noqa: E731
    first = blind_spot_loss(noisy, filtered, seed=3)
    assert blind_spot_loss(noisy, filtered, seed=3) == first
    assert blind_spot_loss(noisy, filtered, seed=5) != first


def test_checks_of_a_stack_give_a_row_per_image_and_their_means():
    stack = np.stack([with_noise(smooth_image(32), seed) for seed in range(3)])
    blur = lambda image: gaussian_filter(image, 1.0)  # noqa: E731
    rows = no_reference_checks(stack, blur, name="blur", names=["a", "b", "c"], seed=2)
    assert [r["image"] for r in rows] == ["a", "b", "c", "mean"]
    assert all(r["method"] == "blur" for r in rows)
    for column in (BLIND_SPOT, AUTOCORR, OUTPUT_CORR):
        assert rows[-1][column] == pytest.approx(np.mean([r[column] for r in rows[:3]]))
    # image i is masked with seed + i, whatever else is in the stack
    assert rows[1][BLIND_SPOT] == blind_spot_loss(stack[1], blur, seed=3)
    # outputs given are used for the residual checks instead of calling the denoiser
    given = no_reference_checks(stack, blur, denoised=stack + 1.0, seed=2)
    assert given[0]["residual mean"] == pytest.approx(-1.0)
    assert given[0][BLIND_SPOT] == rows[0][BLIND_SPOT]
    assert set(NO_REFERENCE_COLUMNS) <= set(rows[0])


def test_bad_arguments_are_refused():
    image = np.zeros((8, 8))
    with pytest.raises(InputError, match="same shape"):
        residual_mean(image, np.zeros((8, 9)))
    with pytest.raises(InputError, match="at least 2 pixels"):
        residual_autocorrelation(np.zeros((1, 8)), np.zeros((1, 8)))
    with pytest.raises(InputError, match="axis must be 0"):
        residual_autocorrelation(image, image, axis=2)
    with pytest.raises(InputError, match="repeats must be at least 1"):
        blind_spot_loss(image, unchanged, repeats=0)
    with pytest.raises(InputError, match="expected a 2-D"):
        blind_spot_loss(np.zeros((2, 8, 8)), unchanged)
    with pytest.raises(InputError, match="returned shape"):
        blind_spot_loss(image, lambda x: x[:4])
    with pytest.raises(InputError, match="2 name"):
        no_reference_checks(np.zeros((3, 8, 8)), unchanged, names=["a", "b"])
