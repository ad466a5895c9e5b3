"""Checks applied where an array enters the library: one-line errors naming the source."""

from __future__ import annotations

import numpy as np

from semdenoise.errors import InputError
from semdenoise.io.axes import Layout


def check_image(image: np.ndarray, *, source: str, axes: str | None = None) -> np.ndarray:
    """Return ``image`` as float32 (Y, X) or (Z, Y, X), or raise InputError saying why not.

    With declared ``axes`` (io/axes.py) any number of dimensions may come; the axes
    must then match it.
    """
    image = np.asarray(image)
    if image.dtype == bool:
        raise InputError(f"{source}: boolean array, expected an intensity image")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"{source}: unsupported pixel type {image.dtype}, expected int or float")
    if axes is not None:
        Layout.of(image, axes, source=source)
    elif image.ndim not in (2, 3):
        raise InputError(
            f"{source}: {image.ndim}-D array of shape {image.shape}, expected 2-D (Y, X) "
            "or 3-D (Z, Y, X); declare other layouts with --axes (e.g. CYX, SCYX)"
        )
    if image.size == 0:
        raise InputError(f"{source}: empty array of shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        bad = ~np.isfinite(image)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"{source}: {int(bad.sum())} NaN/inf pixel(s), first at index {first}")
        if image.itemsize > 4 and np.abs(image).max() > np.finfo(np.float32).max:
            raise InputError(f"{source}: values beyond float32 range")
    return image.astype(np.float32, copy=False)


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


def check_label_ids(labels: np.ndarray, *, source: str, axes: str | None = None) -> np.ndarray:
    """Return a mask or label image as int64 values as given (0 background; a label
    image's objects 1..N; a value the caller ignores, such as -1 or 255, kept)."""
    labels = np.asarray(labels)
    if labels.dtype != bool and not (
        np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
    ):
        raise InputError(f"{source}: unsupported label type {labels.dtype}")
    if axes is not None:
        Layout.of(labels, axes, source=source)
    elif labels.ndim not in (2, 3):
        raise InputError(
            f"{source}: {labels.ndim}-D labels of shape {labels.shape}, expected 2-D or 3-D"
        )
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all():
            raise InputError(f"{source}: labels hold NaN/inf values")
        if not (labels == np.round(labels)).all():
            return (labels != 0).astype(np.int64)  # soft or scaled masks: foreground only
    return labels.astype(np.int64)


def check_labels(labels: np.ndarray, *, source: str, axes: str | None = None) -> np.ndarray:
    """Return a mask or label image as uint8 {0, 1} (any non-zero is foreground)."""
    return (check_label_ids(labels, source=source, axes=axes) != 0).astype(np.uint8)


def check_pairs(
    images: list[tuple[str, np.ndarray]], labels: list[tuple[str, np.ndarray | None]]
) -> None:
    """Labels must match images one to one: same count, same shape, slice by slice
    (``None``: an unlabelled image, any shape; an image's channel axis, first, aside)."""
    if len(images) != len(labels):
        raise InputError(
            f"{len(labels)} label slice(s) for {len(images)} image slice(s): labels must "
            "match images one to one"
        )
    for (image_source, image), (label_source, label) in zip(images, labels, strict=True):
        if label is not None and image.shape[image.ndim - label.ndim :] != label.shape:
            raise InputError(
                f"{label_source}: labels of shape {label.shape} do not match "
                f"{image_source} of shape {image.shape}"
            )
