"""Declared axes: which axis of an array is what (S samples, T time, C channels, Z, Y, X).

A 3-D array is a stack of images for a 2-D model and a volume for a 3-D one; with
channels it may be either or neither. ``axes`` ("YX", "SYX", "ZYX", "CYX", "SCZYX",
case-insensitive) says which, so every command brings any array to one internal layout,
(S, C, Z, Y, X), and puts its result back in the input's own axis order. T counts as
samples (each time point is denoised on its own); without ``axes`` a 2-D array is YX
and a 3-D one SYX for a 2-D model, ZYX for a 3-D one, as before axes existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from semdenoise.errors import InputError

AXIS_LETTERS = "STCZYX"
CANONICAL = "SCZYX"


def parse_axes(axes: str, *, source: str) -> str:
    """``axes`` upper-cased and checked: known letters, each once, Y and X present."""
    letters = str(axes).strip().upper()
    unknown = sorted(set(letters) - set(AXIS_LETTERS))
    if unknown:
        raise InputError(
            f"{source}: axes {axes!r} name unknown axis {unknown[0]!r}, use letters of "
            f"{AXIS_LETTERS} (S samples, T time, C channels, Z, Y, X)"
        )
    repeated = sorted({a for a in letters if letters.count(a) > 1})
    if repeated:
        raise InputError(f"{source}: axes {axes!r} name axis {repeated[0]!r} twice")
    if "Y" not in letters or "X" not in letters:
        raise InputError(f"{source}: axes {axes!r} must include Y and X")
    return letters


def default_axes(ndim: int, *, volume: bool) -> str | None:
    """The axes an undeclared array has always meant: YX; SYX (a stack of images) or,
    for a 3-D model, ZYX. None for any other number of dimensions."""
    return {2: "YX", 3: "ZYX" if volume else "SYX"}.get(ndim)


def named_planes(
    array: np.ndarray, axes: str | None, *, source: str
) -> list[tuple[str, np.ndarray]]:
    """Every 2-D image of ``array`` (see :meth:`Layout.planes`), named for messages:
    ``source`` for a 2-D array, ``source[k]`` for the k-th image of anything larger."""
    planes = Layout.of(array, axes, source=source).planes(array)
    if np.ndim(array) == 2:
        return [(source, planes[0])]
    return [(f"{source}[{k}]", plane) for k, plane in enumerate(planes)]


def stack_axes(ndim: int) -> str:
    """The axes of an image (YX) or a stack of images (SYX): what library code that has
    already split an input passes on, so a model's stored axes never reinterpret it."""
    return "YX" if ndim == 2 else "SYX"


def without_channels(axes: str | None) -> str | None:
    """The axes of labels that go with an image of ``axes``: the same, less C."""
    return None if axes is None else axes.replace("C", "")


@dataclass(frozen=True)
class Layout:
    """An array's declared axes and shape, and the way to (S, C, Z, Y, X) and back."""

    axes: str
    shape: tuple[int, ...]

    @classmethod
    def of(
        cls, array: np.ndarray, axes: str | None, *, volume: bool = False, source: str
    ) -> Layout:
        """The layout of ``array`` under ``axes`` (None: the default for its dimensions)."""
        ndim = np.ndim(array)
        if axes is None:
            axes = default_axes(ndim, volume=volume)
            if axes is None:
                raise InputError(
                    f"{source}: {ndim}-D array of shape {np.shape(array)}, expected 2-D (Y, X) "
                    "or 3-D (Z, Y, X); declare other layouts with --axes (e.g. CYX, SCYX)"
                )
        axes = parse_axes(axes, source=source)
        if len(axes) != ndim:
            raise InputError(
                f"{source}: {ndim}-D array of shape {np.shape(array)} does not match axes "
                f"{axes!r} ({len(axes)} letters)"
            )
        return cls(axes=axes, shape=tuple(int(s) for s in np.shape(array)))

    def size(self, axis: str) -> int:
        """Length along ``axis`` (1 for an axis the array does not have)."""
        return self.shape[self.axes.index(axis)] if axis in self.axes else 1

    @property
    def channels(self) -> int:
        return self.size("C")

    @property
    def samples(self) -> int:
        """Independent samples: S times T."""
        return self.size("S") * self.size("T")

    def _order(self) -> list[str]:
        return [a for a in "STCZYX" if a in self.axes]

    def canonical(self, array: np.ndarray) -> np.ndarray:
        """``array`` as (S, C, Z, Y, X), absent axes of length 1 (T folded into S)."""
        order = self._order()
        moved = np.transpose(array, [self.axes.index(a) for a in order])
        return moved.reshape(
            self.samples, self.channels, self.size("Z"), self.size("Y"), self.size("X")
        )

    def planes(self, array: np.ndarray) -> list[np.ndarray]:
        """Every 2-D image of ``array``, over samples and Z: (Y, X), or (C, Y, X) when it
        has several channels (what a 2-D network takes one at a time)."""
        data = self.canonical(array)
        return [
            data[s, :, z] if self.channels > 1 else data[s, 0, z]
            for s in range(len(data))
            for z in range(data.shape[2])
        ]

    def volumes(self, array: np.ndarray) -> list[np.ndarray]:
        """Every volume of ``array``, one per sample: (Z, Y, X), or (C, Z, Y, X)."""
        data = self.canonical(array)
        return [data[s] if self.channels > 1 else data[s, 0] for s in range(len(data))]

    def restore(self, result: np.ndarray, *, channels: bool = True) -> np.ndarray:
        """A (S, C, Z, Y, X) result back in the declared axis order. ``channels=False``: a
        one-channel result (a mask) of an image with channels, its C axis dropped."""
        order = self._order()
        if not channels:
            order = [a for a in order if a != "C"]
            result = result[:, 0]
        shape = [self.size(a) for a in order]
        if math.prod(shape) != result.size:
            raise ValueError(f"result of shape {result.shape} does not fit layout {self}")
        axes = [a for a in self.axes if a in order]
        return np.transpose(result.reshape(shape), [order.index(a) for a in axes])
