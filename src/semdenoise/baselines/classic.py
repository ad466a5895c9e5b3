"""Classic denoisers whose strength is chosen on the noisy image itself.

Gaussian filter, non-local means and total variation are tuned per image with the
J-invariance trick (Batson & Royer 2019, scikit-image's ``calibrate_denoiser``): each
candidate setting denoises the image with a grid of pixels hidden and replaced by
their neighbours' mean, and the setting whose output best predicts the hidden noisy
pixels wins. No clean image is ever looked at. BM3D needs the noise level, which is
estimated from the image (Immerkær's operator) unless given.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.restoration import calibrate_denoiser, denoise_nl_means, denoise_tv_chambolle

from semdenoise.errors import DependencyError
from semdenoise.predict.noise_level import estimate_noise_sigma

Denoised = tuple[np.ndarray, dict[str, Any]]


def _unit_range(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Scale to about [0, 1] (robust percentiles) so parameter grids suit any data."""
    low, high = (float(v) for v in np.percentile(image, [0.5, 99.5]))
    span = max(high - low, 1e-12)
    return ((image - low) / span).astype(np.float64), low, span


def _calibrated(
    image: np.ndarray, function: Callable[..., np.ndarray], grid: dict[str, list[float]]
) -> Denoised:
    scaled, low, span = _unit_range(image)
    best, (parameters, losses) = calibrate_denoiser(
        scaled, function, grid, stride=4, extra_output=True
    )
    chosen = parameters[int(np.argmin(losses))]
    return (best(scaled) * span + low).astype(np.float32), {k: float(v) for k, v in chosen.items()}


def gaussian_denoise(image: np.ndarray) -> Denoised:
    """Gaussian filter; width self-calibrated."""
    return _calibrated(
        image,
        lambda x, sigma: gaussian_filter(x, sigma),
        {"sigma": [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]},
    )


def tv_denoise(image: np.ndarray) -> Denoised:
    """Total variation (Chambolle); weight self-calibrated."""
    return _calibrated(
        image, denoise_tv_chambolle, {"weight": [float(w) for w in np.geomspace(0.01, 0.5, 10)]}
    )


def nlm_denoise(image: np.ndarray) -> Denoised:
    """Non-local means (5x5 patches, 13x13 search); filter strength self-calibrated
    around the estimated noise level."""
    scaled, _, _ = _unit_range(image)
    sigma = estimate_noise_sigma(scaled)
    return _calibrated(
        image,
        lambda x, h: denoise_nl_means(
            x, h=h, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True
        ),
        {"h": [float(f * sigma) for f in (0.4, 0.6, 0.8, 1.0, 1.2, 1.5)]},
    )


def bm3d_denoise(image: np.ndarray, noise_sigma: float | None = None) -> Denoised:
    """BM3D (the ``bm3d`` package, an optional extra) at the given or estimated sigma."""
    require_optional(["bm3d"])
    import bm3d

    sigma = estimate_noise_sigma(image) if noise_sigma is None else float(noise_sigma)
    result = bm3d.bm3d(image.astype(np.float64), sigma_psd=max(sigma, 1e-6))
    return np.asarray(result, dtype=np.float32), {"sigma": round(sigma, 4)}


# Baselines that need an optional package: (module, extra that installs it).
OPTIONAL = {"bm3d": ("bm3d", "bm3d")}


def require_optional(names: Sequence[str]) -> None:
    """Refuse, in one line and before any work, baselines whose package is missing."""
    for name in names:
        if name not in OPTIONAL:
            continue
        module, extra = OPTIONAL[name]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise DependencyError(
                f"the {name} baseline needs the optional package {module!r}: "
                f"pip install 'semdenoise[{extra}]'"
            ) from e


CLASSIC = {
    "gaussian": gaussian_denoise,
    "nlm": nlm_denoise,
    "tv": tv_denoise,
    "bm3d": bm3d_denoise,
}
