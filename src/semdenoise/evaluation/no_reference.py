"""Quality checks that need no clean image: did a denoiser help, judged from the noisy input.

Users of real microscopes have no clean image, so PSNR/SSIM are out of reach. Two
kinds of evidence remain:

- the **residual** ``r = noisy - denoised`` should look like the noise: zero mean (no
  brightness shift), no spatial structure (lag-1 autocorrelation ~0 for
  pixel-independent noise) and no relation to the output (correlation ~0); structure
  removed together with the noise shows up as positive values, noise only partly
  removed (its fine grain alone) as a negative autocorrelation;
- the **blind-spot loss** (the J-invariant loss of Batson & Royer 2019, "Noise2Self",
  §3): mask pixels the way Noise2Void training does, run the denoiser on the masked
  image and compare its output at the masked pixels with the noisy values there. For
  pixel-independent zero-mean noise its expectation is the MSE to the clean image plus
  the noise variance, so it ranks denoisers as the clean MSE would; doing nothing
  (:func:`unchanged`) is the bar a denoiser must beat.

Every function takes 2-D numpy images and returns plain floats; options are
keyword-only. The checks assume pixel-independent noise: spatially correlated noise
(scan lines, drift) makes the residual autocorrelation positive even for an ideal
denoiser and lets the blind-spot loss reward copying neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from semdenoise.config import PAPER_MASKING, MaskingConfig
from semdenoise.errors import InputError
from semdenoise.training.masking import mask_batch

Denoiser = Callable[[np.ndarray], np.ndarray]

DEFAULT_REPEATS = 2

BLIND_SPOT = "blind-spot loss"
MEAN_SHIFT = "residual mean"
RELATIVE_SHIFT = "residual mean / input std"
AUTOCORR_Y = "residual autocorr Y"
AUTOCORR_X = "residual autocorr X"
AUTOCORR = "residual autocorr"
OUTPUT_CORR = "residual-output corr"

NO_REFERENCE_COLUMNS = [
    "method",
    "image",
    BLIND_SPOT,
    MEAN_SHIFT,
    RELATIVE_SHIFT,
    AUTOCORR,
    OUTPUT_CORR,
]
"""Columns of a compact report table of :func:`no_reference_checks` rows."""

_CHECKS = (BLIND_SPOT, MEAN_SHIFT, RELATIVE_SHIFT, AUTOCORR_Y, AUTOCORR_X, AUTOCORR, OUTPUT_CORR)


def unchanged(image: np.ndarray) -> np.ndarray:
    """Doing nothing, as a denoiser: the reference every real denoiser must beat."""
    return image


def _residual(noisy: np.ndarray, denoised: np.ndarray) -> np.ndarray:
    """``noisy - denoised`` in float64, after checking both are the same 2-D shape."""
    noisy, denoised = np.asarray(noisy), np.asarray(denoised)
    if noisy.ndim != 2 or noisy.shape != denoised.shape:
        raise InputError(
            f"expected a noisy and a denoised 2-D image of the same shape, got "
            f"{noisy.shape} and {denoised.shape}"
        )
    if min(noisy.shape) < 2:
        raise InputError(f"image of shape {noisy.shape}: need at least 2 pixels along Y and X")
    return noisy.astype(np.float64) - denoised.astype(np.float64)


def residual_mean(noisy: np.ndarray, denoised: np.ndarray, *, relative: bool = False) -> float:
    """Mean of ``noisy - denoised``: the intensity shift a denoiser added (~0 is right).

    Zero-mean noise leaves a zero-mean residual, so a non-zero value is a brightness
    change the denoiser made. With ``relative`` the shift is divided by the standard
    deviation of the noisy input, so images of any intensity scale compare; for a
    constant input that is 0.0 without a shift and +-inf with one.

    >>> residual_mean(np.full((4, 4), 3.0), np.full((4, 4), 1.0))
    2.0
    """
    shift = float(_residual(noisy, denoised).mean())
    if not relative:
        return shift
    spread = float(np.asarray(noisy, dtype=np.float64).std())
    if spread > 0:
        return shift / spread
    return 0.0 if shift == 0 else math.copysign(math.inf, shift)


# Spreads below this share of the intensities are rounding (float32 images): zero.
_ROUNDING = 8 * float(np.finfo(np.float32).eps)


def _scale(*images: np.ndarray) -> float:
    return max(float(np.abs(image).max()) for image in images)


def _lag_one(residual: np.ndarray, axis: int, scale: float) -> float:
    centred = residual - residual.mean()
    variance = float(np.mean(centred**2))
    if math.sqrt(variance) <= _ROUNDING * scale:  # zero or constant: no structure
        return 0.0
    ahead = np.take(centred, range(1, centred.shape[axis]), axis=axis)
    behind = np.take(centred, range(centred.shape[axis] - 1), axis=axis)
    return float(np.mean(ahead * behind)) / variance


def residual_autocorrelation(
    noisy: np.ndarray, denoised: np.ndarray, *, axis: int | None = None
) -> float:
    """Normalised lag-1 autocorrelation of ``noisy - denoised``: ~0 means only noise was removed.

    Pixel-independent noise is uncorrelated between neighbours, so the residual of a
    denoiser that removed exactly the noise is too; edges and texture removed with the
    noise (blurring) are smooth at the pixel scale and make it positive. A negative
    value means only the finest grain was removed: a mild smoothing filter takes the
    noise's high frequencies and leaves its low ones in the output (a Gaussian filter
    of sigma 1 on white noise: about -0.17). ``axis`` 0 is Y, 1 is X, ``None`` the mean
    of the two. The estimate is the mean product of neighbours
    divided by the residual's variance (centred on its mean, so a pure offset does not
    count); a residual without variance (identity, constant offset; spreads below
    float32 rounding of the intensities count as none) gives 0.0.
    """
    residual = _residual(noisy, denoised)
    scale = _scale(noisy, denoised)
    if axis is None:
        return (_lag_one(residual, 0, scale) + _lag_one(residual, 1, scale)) / 2
    if axis not in (0, 1):
        raise InputError(f"axis must be 0 (Y), 1 (X) or None (both), got {axis!r}")
    return _lag_one(residual, axis, scale)


def residual_output_correlation(noisy: np.ndarray, denoised: np.ndarray) -> float:
    """Pearson correlation of ``noisy - denoised`` with ``denoised``: ~0 for an ideal denoiser.

    Independent noise is unrelated to the signal, so a residual that follows the output
    holds signal: positive when the denoiser removed some (output too flat), negative
    when it exaggerated or invented contrast. 0.0 when either has no variance beyond
    float32 rounding (nothing to correlate: the identity's zero residual, a constant
    offset, a constant output).
    """
    residual = _residual(noisy, denoised)
    output = np.asarray(denoised, dtype=np.float64)
    residual, output = residual - residual.mean(), output - output.mean()
    spreads = [math.sqrt(float(np.mean(a**2))) for a in (residual, output)]
    if min(spreads) <= _ROUNDING * _scale(noisy, denoised):
        return 0.0
    return float(np.mean(residual * output)) / (spreads[0] * spreads[1])


def blind_spot_loss(
    noisy: np.ndarray,
    denoiser: Denoiser,
    *,
    repeats: int = DEFAULT_REPEATS,
    masking: MaskingConfig | None = None,
    seed: int = 0,
) -> float:
    """Mean squared error of ``denoiser`` on noisy pixels it was not shown (Noise2Self §3).

    Masks one pixel per grid cell at the paper's training density (``PAPER_MASKING``:
    paper §2.1, 169 pixels on 256x256), each replaced by a random other pixel of its
    5x5 window as Noise2Void does, runs ``denoiser`` (a :class:`Method` or any function
    image -> image of the same shape) on the masked image and compares its output at
    the masked pixels with the noisy values there, averaged over ``repeats`` maskings
    so that small images hold enough pixels. For pixel-independent zero-mean noise the
    expectation is the MSE to the clean image (of the prediction made without each
    pixel's own value) plus the noise variance, so it ranks denoisers as the clean MSE
    would; lower is better.

    The masking makes any denoiser J-invariant on the masked pixels: a network or a
    plain filter, which is not blind-spot by itself, sees the replacement value in
    place of the noisy one, so numbers compare across methods. Doing nothing
    (:func:`unchanged`) scores the squared difference between neighbours, about twice
    the noise variance on smooth images. ``seed`` seeds a local torch generator: the
    same seed gives every denoiser the same masks.
    """
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    if np.ndim(noisy) != 2:
        raise InputError(f"expected a 2-D (Y, X) image, got shape {np.shape(noisy)}")
    masking = masking or PAPER_MASKING
    generator = torch.Generator()  # local: the caller's global RNG state is left alone
    generator.manual_seed(seed)
    image = torch.from_numpy(np.array(noisy, dtype=np.float32))[None, None]
    original = image[0, 0].numpy().astype(np.float64)
    errors = []
    for _ in range(repeats):
        masked, (_, *coords) = mask_batch(image, masking, generator=generator)
        output = np.asarray(denoiser(masked[0, 0].numpy()))
        if output.shape != original.shape:
            raise InputError(
                f"the denoiser returned shape {output.shape} for an image of {original.shape}"
            )
        where = tuple(c.numpy() for c in coords)
        errors.append((output[where].astype(np.float64) - original[where]) ** 2)
    return float(np.concatenate(errors).mean())


def _as_images(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            return [images]
        if images.ndim == 3:
            return list(images)
        raise InputError(f"expected a 2-D image or a (N, Y, X) stack, got shape {images.shape}")
    return [np.asarray(image) for image in images]


def no_reference_checks(
    images: np.ndarray | Sequence[np.ndarray],
    denoiser: Denoiser,
    *,
    name: str = "denoised",
    names: Sequence[str] | None = None,
    denoised: np.ndarray | Sequence[np.ndarray] | None = None,
    repeats: int = DEFAULT_REPEATS,
    masking: MaskingConfig | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every no-reference check of one denoiser on each image, then their means.

    ``images`` is a 2-D image, a (N, Y, X) stack or a sequence of 2-D images (sizes may
    differ). Returns one row per image (``"method"``: ``name``, ``"image"``: its entry
    in ``names`` or its index) and a last summary row (``"image"``: ``"mean"``) holding
    each check's mean over the images. ``denoised`` gives outputs already computed (the
    residual checks use them; the blind-spot loss always runs ``denoiser`` on masked
    copies). Image ``i`` is masked with seed ``seed + i``, so every denoiser checked with
    the same seed meets the same masks: differences are paired, not sampling noise.
    """
    noisy_images = _as_images(images)
    outputs = None if denoised is None else _as_images(denoised)
    labels: list[Any] = list(range(len(noisy_images))) if names is None else list(names)
    if not noisy_images or len(labels) != len(noisy_images):
        raise InputError(f"{len(labels)} name(s) for {len(noisy_images)} image(s)")
    if outputs is not None and len(outputs) != len(noisy_images):
        raise InputError(f"{len(outputs)} denoised image(s) for {len(noisy_images)} noisy")
    masking = masking or PAPER_MASKING
    rows: list[dict[str, Any]] = []
    for i, (label, noisy) in enumerate(zip(labels, noisy_images, strict=True)):
        output = denoiser(noisy) if outputs is None else outputs[i]
        rows.append(
            {
                "method": name,
                "image": label,
                BLIND_SPOT: blind_spot_loss(
                    noisy, denoiser, repeats=repeats, masking=masking, seed=seed + i
                ),
                MEAN_SHIFT: residual_mean(noisy, output),
                RELATIVE_SHIFT: residual_mean(noisy, output, relative=True),
                AUTOCORR_Y: residual_autocorrelation(noisy, output, axis=0),
                AUTOCORR_X: residual_autocorrelation(noisy, output, axis=1),
                AUTOCORR: residual_autocorrelation(noisy, output),
                OUTPUT_CORR: residual_output_correlation(noisy, output),
            }
        )
    summary: dict[str, Any] = {"method": name, "image": "mean"}
    summary |= {check: float(np.mean([row[check] for row in rows])) for check in _CHECKS}
    return [*rows, summary]
