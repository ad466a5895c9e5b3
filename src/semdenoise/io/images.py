"""Image readers and writers: TIFF, PNG, NPY and Zarr in; TIFF, NPY and Zarr out.

Writers go to a temporary name beside the target and ``os.replace`` it into place, so
a crash never leaves a half-written file under the final name, and they refuse to
write over an input.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semdenoise.errors import InputError, system_failure
from semdenoise.io.atomic import atomic_path
from semdenoise.io.axes import named_planes
from semdenoise.io.checks import check_image, check_label_ids, check_labels

SUPPORTED_INPUTS = (".tif", ".tiff", ".png", ".npy", ".zarr")
SUPPORTED_OUTPUTS = (".tif", ".tiff", ".npy", ".zarr")


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _read_raw(path: Path, as_stored: bool = False) -> np.ndarray:
    suffix = _suffix(path)
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".png":
        from PIL import Image

        with Image.open(path) as handle:
            array = np.array(handle)
        if array.ndim == 3:  # grey stored as RGB(A): keep it; real colour is refused
            colour = array[..., :3]
            if not ((colour == colour[..., :1]).all()):
                raise InputError(f"{path}: colour PNG, expected a greyscale image")
            array = colour[..., 0]
        return array
    if suffix == ".zarr":
        return np.asarray(_open_zarr_array(path, as_stored)[...])
    raise InputError(
        f"{path}: unsupported file type {suffix or '(none)'}, expected one of "
        f"{', '.join(SUPPORTED_INPUTS)}"
    )


def _open_zarr_array(path: Path, as_stored: bool = False):
    """The full-resolution array of a Zarr store: a plain array, an OME-Zarr image (its
    singleton T/C axes squeezed away, unless read ``as_stored`` for declared axes) or a
    bioformats2raw container's first image."""
    from semdenoise.io.ome_zarr import open_image

    return open_image(path, as_stored=as_stored)[0]


def _read_file(path: Path, as_stored: bool = False) -> np.ndarray:
    """The raw array of one file; a missing or unreadable file is a one-line InputError.
    ``as_stored``: an OME-Zarr image with every axis it has (declared axes describe it)."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    try:
        return _read_raw(path, as_stored)
    except InputError:
        raise
    except Exception as e:  # any reader failure is an unreadable file, said in one line
        failure = system_failure(e)
        if failure is not None:
            raise InputError(f"{path}: {failure}") from e
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot read as {_suffix(path)} image: {reason}") from e


def read_image(path: str | os.PathLike, *, axes: str | None = None) -> np.ndarray:
    """Read one 2-D image or 3-D (Z, Y, X) stack as float32, checked; with declared
    ``axes`` (io/axes.py), an array of as many dimensions as it names.

    Raises InputError for a missing, unreadable or foreign file, a wrong number of
    dimensions, or NaN/inf pixels; the message names the file.
    """
    path = Path(path)
    return check_image(_read_file(path, axes is not None), source=str(path), axes=axes)


def read_labels(path: str | os.PathLike, *, axes: str | None = None) -> np.ndarray:
    """Read a mask or label image (any non-zero is foreground) as uint8 {0, 1}."""
    path = Path(path)
    return check_labels(_read_file(path, axes is not None), source=str(path), axes=axes)


def read_label_ids(path: str | os.PathLike, *, axes: str | None = None) -> np.ndarray:
    """Read a mask or label image with its values kept (objects 1..N stay apart)."""
    path = Path(path)
    return check_label_ids(_read_file(path, axes is not None), source=str(path), axes=axes)


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(
        p for p in folder.iterdir() if _suffix(p) in SUPPORTED_INPUTS and not p.name.startswith(".")
    )


def input_files(path: str | os.PathLike) -> list[Path]:
    """The files a path names: a folder's image files (sorted; a Zarr store is one
    file), or the path itself."""
    path = Path(path)
    if path.is_dir() and _suffix(path) != ".zarr":
        files = list_image_files(path)
        if not files:
            raise InputError(f"{path}: folder holds no image files ({', '.join(SUPPORTED_INPUTS)})")
        return files
    return [path]


def _read_slices(
    path: str | os.PathLike, reader: Callable[..., np.ndarray], axes: str | None
) -> list[tuple[str, np.ndarray]]:
    files = input_files(path)
    slices: list[tuple[str, np.ndarray]] = []
    for file in files:
        slices.extend(named_planes(reader(file, axes=axes), axes, source=str(file)))
    return slices


def read_training_images(
    path: str | os.PathLike, *, axes: str | None = None
) -> list[tuple[str, np.ndarray]]:
    """Every 2-D image of a file, a stack or a folder of such files, named for messages.

    Returns ``(source, image)`` pairs where ``source`` says file and slice, so a later
    error can point at the exact slice. An image is (Y, X), or (C, Y, X) when declared
    ``axes`` hold several channels.
    """
    return _read_slices(path, read_image, axes)


def read_training_labels(
    path: str | os.PathLike, *, axes: str | None = None
) -> list[tuple[str, np.ndarray]]:
    """Every 2-D label slice (values kept), in the order ``read_training_images`` gives
    images; ``axes`` are the labels' own (the images' without C)."""
    return _read_slices(path, read_label_ids, axes)


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if two paths name the same file (resolved, so ./x and x agree)."""
    return Path(a).resolve() == Path(b).resolve()


def write_image(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    inputs: tuple[str | os.PathLike, ...] = (),
    chunks: tuple[int, ...] | None = None,
) -> None:
    """Write an array atomically as TIFF, NPY or Zarr (chosen by suffix).

    Zarr is an OME-NGFF 0.5 multiscale pyramid (level ``0`` the array itself, then
    halved levels; :func:`semdenoise.io.ome_zarr.write_pyramid`) of a 2-D or 3-D array.
    ``inputs`` are paths this call must never overwrite (the CLI passes its inputs).
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in SUPPORTED_OUTPUTS:
        raise InputError(
            f"{path}: unsupported output type {suffix or '(none)'}, expected one of "
            f"{', '.join(SUPPORTED_OUTPUTS)}"
        )
    for source in inputs:
        if same_path(source, path):
            raise InputError(f"{path}: output would overwrite an input; choose another name")
    if not path.parent.exists():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    if suffix == ".zarr":
        from semdenoise.io.ome_zarr import check_writable

        check_writable(path, image)
    with atomic_path(path) as tmp:
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, image, compression="zlib", photometric="minisblack")
        elif suffix == ".npy":
            with open(tmp, "wb") as handle:  # np.save on a path would append ".npy"
                np.save(handle, image, allow_pickle=False)
        else:  # an OME-NGFF pyramid, like the chunked Zarr output
            from semdenoise.io.ome_zarr import write_ome_zarr

            write_ome_zarr(tmp, image, chunks=chunks, name=path.stem)
