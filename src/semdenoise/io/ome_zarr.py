"""OME-Zarr (OME-NGFF) images: find the full-resolution array of any Zarr image, and
write an image as a multiscale pyramid that napari and other NGFF viewers open at any
zoom.

Reading accepts a plain Zarr array, an OME-Zarr image group (0.4: ``multiscales`` in
the attributes; 0.5: under ``ome``) and a bioformats2raw container (its first image,
``0``). Singleton time and channel axes (the ``t`` and ``c`` of a TCZYX image) are
squeezed away, so such a file reads as the (Z, Y, X) stack or (Y, X) image it holds.

Writing (OME-NGFF 0.5, Zarr v3): level ``0`` is the image; each further level halves
Y and X, by the mean of 2x2 pixels for float images and by taking every second pixel
for integer ones (masks and labels keep their values), and Z too where the voxel size
allows (:func:`pyramid_factors` states the rule). A level is computed with Dask from the
level before it as written, so memory follows the chunk, never the image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semdenoise.errors import InputError

logger = logging.getLogger(__name__)

OME_VERSION = "0.5"
PYRAMID_MIN_SIDE = 256
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


@dataclass(frozen=True)
class ImageSpace:
    """Where level 0 lies in the world: one OME axis, voxel size and origin per array
    axis. ``spacing_known`` says the voxel size came from the input file, so Z may be
    downsampled (:func:`pyramid_factors`)."""

    axes: tuple[dict[str, Any], ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None
    spacing_known: bool = False

    @classmethod
    def default(cls, ndim: int) -> ImageSpace:
        """Unit voxels at the origin, axes (y, x) or (z, y, x)."""
        axes = tuple({"name": name, "type": "space"} for name in "zyx"[-ndim:])
        return cls(axes=axes, scale=(1.0,) * ndim)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(str(axis["name"]) for axis in self.axes)


class SqueezedArray:
    """A read-only view of a Zarr array without some of its singleton axes.

    Indexed like the array it views (integers, slices, ``...``), so NumPy, Dask and the
    readers treat both alike.
    """

    def __init__(self, array: Any, keep: tuple[int, ...]) -> None:
        self.array, self.keep = array, keep
        self.shape = tuple(array.shape[axis] for axis in keep)
        self.chunks = tuple(array.chunks[axis] for axis in keep)
        self.dtype = array.dtype
        self.ndim = len(keep)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        ellipses = [i for i, k in enumerate(key) if k is Ellipsis]
        if ellipses:
            at = ellipses[0]
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        full: list[Any] = [0] * self.array.ndim  # an integer drops the singleton axis
        for axis, index in zip(self.keep, key, strict=True):
            full[axis] = index
        return self.array[tuple(full)]

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (type(self).__name__, str(self.array.store_path), self.keep)


def open_image(path: Path, *, as_stored: bool = False) -> tuple[Any, ImageSpace | None]:
    """The full-resolution array of a Zarr store (a ``zarr.Array``, or a
    :class:`SqueezedArray` without singleton T/C axes) and, for an OME-Zarr image, where
    it lies in the world (its kept axes, voxel size and origin); ``None`` otherwise.
    ``as_stored``: the array with every axis it has (for declared ``--axes``, such as
    TCZYX with several channels), and no world position.

    Raises InputError for a group without an image, or (unless ``as_stored``) an image
    with several time points or channels.
    """
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return node, None
    group, multiscale = _image_group(node)
    if multiscale is None:
        if "0" in group and isinstance(group["0"], zarr.Array):
            return group["0"], None
        raise InputError(f"{path}: Zarr group holds no image array (no multiscales, no '0')")
    array = group[multiscale["datasets"][0]["path"]]
    if as_stored:
        return array, None
    axes = _axes(multiscale, array.ndim)
    if axes is None:  # no usable axes (before OME-NGFF 0.4): the array as it is
        return array, None
    keep = _kept_axes(path, array.shape, axes)
    view = array if len(keep) == array.ndim else SqueezedArray(array, keep)
    return view, _space(multiscale, axes, keep)


def _image_group(node: Any) -> tuple[Any, dict[str, Any] | None]:
    """The group that holds the image and its first multiscale entry; a bioformats2raw
    container holds its (first) image in the child group ``0``."""
    import zarr

    multiscale = _multiscale(node)
    if multiscale is None and "0" in node:
        child = node["0"]
        if isinstance(child, zarr.Group) and _multiscale(child) is not None:
            return child, _multiscale(child)
    return node, multiscale


def _multiscale(group: Any) -> dict[str, Any] | None:
    attrs = group.attrs
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    return multiscales[0] if multiscales else None


def _axes(multiscale: dict[str, Any], ndim: int) -> list[dict[str, Any]] | None:
    """The multiscale's axes as dicts with a type (0.3 stored bare names)."""
    axes = multiscale.get("axes")
    if not isinstance(axes, list) or len(axes) != ndim:
        return None
    named = [dict(axis) if isinstance(axis, dict) else {"name": str(axis)} for axis in axes]
    for axis in named:
        if "type" not in axis and str(axis.get("name")).lower() in _AXIS_TYPES:
            axis["type"] = _AXIS_TYPES[str(axis["name"]).lower()]
    return named


def _kept_axes(path: Path, shape: tuple[int, ...], axes: list[dict[str, Any]]) -> tuple[int, ...]:
    """Every spatial axis, and the others where they are singleton (squeezed away)."""
    other = [i for i, axis in enumerate(axes) if axis.get("type") != "space"]
    several = [i for i in other if shape[i] != 1]
    if several:
        names = ", ".join(str(axis.get("name")) for axis in axes)
        found = ", ".join(f"{axes[i].get('name')}={shape[i]}" for i in several)
        raise InputError(
            f"{path}: OME-Zarr image with axes ({names}) of shape {tuple(shape)} has "
            f"{found}; expected a single time point and channel"
        )
    return tuple(i for i in range(len(shape)) if i not in other)


def _space(
    multiscale: dict[str, Any], axes: list[dict[str, Any]], keep: tuple[int, ...]
) -> ImageSpace:
    """Level 0's kept axes, voxel size and origin (dataset and multiscale transforms)."""
    ndim = len(axes)
    scale, translation = [1.0] * ndim, [0.0] * ndim
    known = False
    for transforms in (
        multiscale["datasets"][0].get("coordinateTransformations", []),
        multiscale.get("coordinateTransformations", []),  # applied after the dataset's
    ):
        for transform in transforms:
            if transform.get("type") == "scale" and len(transform.get("scale", [])) == ndim:
                factor = [float(s) for s in transform["scale"]]
                scale = [a * b for a, b in zip(scale, factor, strict=True)]
                translation = [a * b for a, b in zip(translation, factor, strict=True)]
                known = True
            elif transform.get("type") == "translation" and (
                len(transform.get("translation", [])) == ndim
            ):
                shift = [float(t) for t in transform["translation"]]
                translation = [a + b for a, b in zip(translation, shift, strict=True)]
    return ImageSpace(
        axes=tuple(axes[i] for i in keep),
        scale=tuple(scale[i] for i in keep),
        translation=tuple(translation[i] for i in keep) if any(translation) else None,
        spacing_known=known,
    )


def to_dask(array: Any, chunks: tuple[tuple[int, ...], ...]) -> Any:
    """A Dask array over what :func:`open_image` returned, in ``chunks``."""
    import dask.array as da
    from dask.base import tokenize

    if isinstance(array, SqueezedArray):
        return da.from_array(
            array,
            chunks=chunks,
            name=f"from-ome-zarr-{tokenize(array, chunks)}",
            meta=np.empty((0,) * array.ndim, dtype=array.dtype),
        )
    return da.from_zarr(array, chunks=chunks)


def pyramid_factors(
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    *,
    spacing: tuple[float, ...] | None = None,
    min_side: int = PYRAMID_MIN_SIDE,
) -> list[tuple[int, ...]]:
    """How many level-0 pixels one pixel of each pyramid level spans, per axis.

    Each level halves Y and X (the last two axes). Levels are added while the last one
    is larger than one chunk in Y or X and, after the first added level, while its
    smaller Y/X side is above ``min_side``: an image larger than one chunk always gets a
    second level, and the top level is small enough for a viewer's overview.

    Z (the first axis of a 3-D image) is halved too, when ``spacing`` (the voxel size
    the input declared) is given, Z has more than one slice, and its spacing at that
    level is at most the smaller Y/X spacing. Thick slices therefore stay whole until
    the Y/X pixels have grown as large, and a level never becomes coarser in Z than in
    Y/X. Without a known spacing Z is kept: a stack may hold unrelated slices.

    >>> pyramid_factors((2000, 1000), (256, 256))
    [(1, 1), (2, 2), (4, 4)]
    >>> pyramid_factors((40, 2000, 1000), (1, 1024, 1024), spacing=(1.0, 0.32, 0.32))
    [(1, 1, 1), (1, 2, 2)]
    """
    ndim = len(shape)
    factors = [(1,) * ndim]
    while True:
        current = factors[-1]
        level = [-(-n // f) for n, f in zip(shape, current, strict=True)]
        y, x = level[-2:]
        if y <= chunks[-2] and x <= chunks[-1]:
            break
        if len(factors) > 1 and min(y, x) <= min_side:
            break
        halve = [False] * (ndim - 2) + [True, True]
        if ndim == 3 and spacing is not None and level[0] > 1:
            z_spacing = spacing[0] * current[0]
            halve[0] = z_spacing <= min(spacing[-2] * current[-2], spacing[-1] * current[-1])
        factors.append(tuple(f * 2 if h else f for f, h in zip(current, halve, strict=True)))
    return factors


def multiscale_metadata(
    space: ImageSpace,
    factors: list[tuple[int, ...]],
    *,
    nearest: bool,
    name: str | None = None,
) -> dict[str, Any]:
    """The ``ome`` attributes of an OME-NGFF 0.5 image with one dataset per level.

    A level's voxel is ``factor`` times level 0's; its origin moves by half the pixels
    it spans for a mean (the centre of the pixels averaged), not for a nearest level
    (its pixel 0 is level 0's pixel 0).
    """
    origin = space.translation or (0.0,) * len(space.scale)
    datasets = []
    for index, factor in enumerate(factors):
        scale = [s * f for s, f in zip(space.scale, factor, strict=True)]
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
        translation = [
            t if nearest else t + s * (f - 1) / 2
            for t, s, f in zip(origin, space.scale, factor, strict=True)
        ]
        if any(translation):
            transforms.append({"type": "translation", "translation": translation})
        datasets.append({"path": str(index), "coordinateTransformations": transforms})
    method = "nearest" if nearest else "mean"
    multiscale: dict[str, Any] = {
        "axes": [dict(axis) for axis in space.axes],
        "datasets": datasets,
        "type": method,
        "metadata": {
            "description": "every second pixel (integer image)"
            if nearest
            else "mean of 2 pixels along each halved axis",
            "method": "semdenoise.io.ome_zarr.write_pyramid",
        },
    }
    if name is not None:
        multiscale["name"] = name
    return {"version": OME_VERSION, "multiscales": [multiscale]}


def create_level0(
    group: Any, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any, space: ImageSpace
) -> Any:
    """Create the full-resolution array ``0`` of an OME-Zarr group and its metadata (one
    level until :func:`write_pyramid` adds the others)."""
    array = group.create_array(
        "0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0, dimension_names=space.names
    )
    nearest = not np.issubdtype(np.dtype(dtype), np.floating)
    group.attrs["ome"] = multiscale_metadata(space, [(1,) * len(shape)], nearest=nearest)
    return array


def write_pyramid(
    group: Any, space: ImageSpace, *, name: str | None = None, min_side: int = PYRAMID_MIN_SIDE
) -> list[tuple[int, ...]]:
    """Add the downsampled levels ``1``, ``2``, ... of ``group["0"]`` and the OME-NGFF
    metadata that lists them all; returns the levels' factors (:func:`pyramid_factors`).

    Each level is computed by Dask from the level before as written, chunk by chunk on
    local threads, and written in whole chunks of level 0's chunk shape; running it
    again rewrites the same levels (a resumed output does).
    """
    import dask.array as da

    level0 = group["0"]
    spacing = space.scale if space.spacing_known else None
    factors = pyramid_factors(level0.shape, level0.chunks, spacing=spacing, min_side=min_side)
    nearest = not np.issubdtype(level0.dtype, np.floating)
    for index in range(1, len(factors)):
        halve = tuple(a != b for a, b in zip(factors[index], factors[index - 1], strict=True))
        level = _halve(da.from_zarr(group[str(index - 1)]), halve, nearest=nearest)
        chunks = tuple(min(c, n) for c, n in zip(level0.chunks, level.shape, strict=True))
        array = group.create_array(
            str(index),
            shape=level.shape,
            chunks=chunks,
            dtype=level0.dtype,
            fill_value=0,
            dimension_names=space.names,
            overwrite=True,
        )
        # whole chunks per task, so no two tasks write the same chunk; local threads even
        # when a distributed client is the default (the output is local to this process)
        da.store(level.rechunk(chunks), array, lock=False, scheduler="threads")
        logger.info("wrote pyramid level %d %s", index, level.shape)
    group.attrs["ome"] = multiscale_metadata(space, factors, nearest=nearest, name=name)
    return factors


def _halve(level: Any, halve: tuple[bool, ...], *, nearest: bool) -> Any:
    """Half the size along the ``halve`` axes (an odd size rounds up)."""
    import dask.array as da

    if nearest:
        return level[tuple(slice(None, None, 2) if h else slice(None) for h in halve)]
    # an odd last pixel is averaged with a copy of itself
    pad = [(0, n % 2 if h else 0) for n, h in zip(level.shape, halve, strict=True)]
    if any(after for _, after in pad):
        level = da.pad(level, pad, mode="edge")
    axes = {axis: 2 for axis, h in enumerate(halve) if h}
    return da.coarsen(np.mean, level, axes).astype(level.dtype)


def check_writable(path: str | Path, image: np.ndarray) -> None:
    """Refuse what an OME-Zarr image of this project cannot hold (named by ``path``)."""
    if image.ndim not in (2, 3):
        raise InputError(
            f"{path}: Zarr output holds a 2-D (Y, X) image or 3-D (Z, Y, X) stack, "
            f"got {image.ndim}-D of shape {image.shape}"
        )


def write_ome_zarr(
    path: str | Path,
    image: np.ndarray,
    *,
    chunks: tuple[int, ...] | None = None,
    space: ImageSpace | None = None,
    name: str | None = None,
) -> None:
    """Write an in-memory (Y, X) image or (Z, Y, X) stack as an OME-Zarr pyramid at
    ``path`` (not atomically: :func:`semdenoise.io.write_image` is the atomic front);
    ``name`` is the image's name that viewers show (napari: the layer's)."""
    import zarr

    check_writable(path, image)
    space = space or ImageSpace.default(image.ndim)
    chunks = chunks or tuple(
        min(s, 256 if i >= image.ndim - 2 else 1) for i, s in enumerate(image.shape)
    )
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    create_level0(group, image.shape, chunks, image.dtype, space)[...] = image
    write_pyramid(group, space, name=name)
