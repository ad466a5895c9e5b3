"""Checks applied where an array enters the library: one-line errors naming the source."""

from __future__ import annotations

import numpy as np

from semdenoise.errors import InputError


def check_image(image: np.ndarray, *, source: str) -> np.ndarray:
    """Return ``image`` as float32 (Y, X) or (Z, Y, X), or raise InputError saying why not."""
    image = np.asarray(image)
    if image.dtype == bool:
        raise InputError(f"{source}: boolean array, expected an intensity image")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"{source}: unsupported pixel type {image.dtype}, expected int or float")
    if image.ndim not in (2, 3):
        raise InputError(
            f"{source}: {image.ndim}-D array of shape {image.shape}, expected 2-D (Y, X) "
            "or 3-D (Z, Y, X)"
        )
    if image.size == 0:
        raise InputError(f"{source}: empty array of shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        bad = ~np.isfinite(image)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"{source}: {int(bad.sum())} NaN/inf pixel(s), first at index {first}")
    image = image.astype(np.float32, copy=False)
    if np.isinf(image).any():  # float64 values beyond float32's range
        raise InputError(f"{source}: values beyond float32 range")
    return image


def check_min_size(image: np.ndarray, min_size: int, *, source: str) -> None:
    """Refuse images whose Y or X side is smaller than the network needs."""
    height, width = image.shape[-2:]
    if min(height, width) < min_size:
        raise InputError(
            f"{source}: image of {height}x{width} pixels is smaller than the "
            f"{min_size}x{min_size} this network needs"
        )


def check_not_constant(image: np.ndarray, *, source: str) -> None:
    """Refuse a training image that carries no signal (all pixels equal)."""
    if float(image.max()) == float(image.min()):
        raise InputError(f"{source}: constant image (every pixel is {float(image.min())!r})")
