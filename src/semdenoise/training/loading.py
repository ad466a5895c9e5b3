"""Training images and labels from files or arrays: loaded, checked, split, normalised.

What comes out is a :class:`TrainingData` whose image banks
(:class:`semdenoise.training.sampling.ImageBank`) the training step samples from.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semdenoise.config import UNetConfig
from semdenoise.errors import InputError
from semdenoise.io.checks import (
    check_image,
    check_label_ids,
    check_min_size,
    check_not_constant,
    check_pairs,
)
from semdenoise.io.images import (
    SUPPORTED_INPUTS,
    list_image_files,
    read_image,
    read_training_images,
    read_training_labels,
)
from semdenoise.models.normalization import Normalization
from semdenoise.models.targets import SegTarget, encode_labels
from semdenoise.training.sampling import ImageBank

logger = logging.getLogger(__name__)

ImagesLike = str | os.PathLike | np.ndarray | Sequence[np.ndarray]


def load_training_images(images: ImagesLike, *, min_size: int) -> list[tuple[str, np.ndarray]]:
    """Named, checked 2-D float32 training images from a path, an array or a list of arrays.

    A (Z, Y, X) array or stack file contributes every slice as one image.
    """
    if isinstance(images, str | os.PathLike):
        named = read_training_images(images)
    else:
        arrays = [images] if isinstance(images, np.ndarray) else list(images)
        if not arrays:
            raise InputError("training images: empty list")
        named = []
        for index, array in enumerate(arrays):
            array = check_image(array, source=f"images[{index}]")
            if array.ndim == 2:
                named.append((f"images[{index}]", array))
            else:
                named.extend((f"images[{index}][{z}]", plane) for z, plane in enumerate(array))
    for source, image in named:
        check_min_size(image, min_size, source=source)
        check_not_constant(image, source=source)
    return named


LabelsLike = ImagesLike | Sequence[np.ndarray | None]
NamedLabels = list[tuple[str, np.ndarray | None]]  # None: an unlabelled image


def _folder(path: ImagesLike | LabelsLike) -> Path | None:
    """``path`` as a folder of image files (not a Zarr store), or None."""
    if not isinstance(path, str | os.PathLike):
        return None
    path = Path(path)
    return path if path.is_dir() and path.suffix.lower() != ".zarr" else None


def _slice_count(named: list[tuple[str, np.ndarray]], file: Path) -> int:
    """How many of the named slices ``file`` gave (names are ``file`` or ``file[z]``)."""
    return sum(1 for source, _ in named if source == str(file) or source.startswith(f"{file}["))


def _labels_by_stem(images: Path, labels: Path, named: list[tuple[str, np.ndarray]]) -> NamedLabels:
    """Partial labels: each label file pairs with the image file of the same stem; an
    image without one is unlabelled (``None`` for each of its slices)."""
    image_files = list_image_files(images)
    by_stem: dict[str, Path] = {}
    for file in list_image_files(labels):
        if file.stem in by_stem:
            raise InputError(f"{file}: two label files for image {file.stem!r} in {labels}")
        by_stem[file.stem] = file
    stray = sorted(set(by_stem) - {f.stem for f in image_files})
    if stray:
        raise InputError(
            f"{by_stem[stray[0]]}: no image named {stray[0]!r} in {images} "
            "(labels pair with images by file name)"
        )
    if not by_stem:
        raise InputError(f"{labels}: folder holds no label files ({', '.join(SUPPORTED_INPUTS)})")
    paired: NamedLabels = []
    for file in image_files:
        count = _slice_count(named, file)
        if file.stem not in by_stem:
            paired.extend((f"{file} (unlabelled)", None) for _ in range(count))
            continue
        slices = read_training_labels(by_stem[file.stem])
        if len(slices) != count:
            raise InputError(
                f"{by_stem[file.stem]}: {len(slices)} label slice(s) for the {count} slice(s) "
                f"of {file}"
            )
        paired.extend(slices)
    return paired


def load_training_labels(
    labels: LabelsLike, images: ImagesLike, named: list[tuple[str, np.ndarray]]
) -> NamedLabels:
    """Named label slices (values kept) matching the named image slices one to one.

    A labels folder beside an images folder pairs files by stem, so some images may be
    unlabelled; in a list of arrays, ``None`` marks an unlabelled image.
    """
    labels_folder, images_folder = _folder(labels), _folder(images)
    if labels_folder is not None and images_folder is not None:
        paired = _labels_by_stem(images_folder, labels_folder, named)
    elif isinstance(labels, str | os.PathLike):
        paired = list(read_training_labels(labels))
    else:
        arrays = [labels] if isinstance(labels, np.ndarray) else list(labels)
        image_arrays = [images] if isinstance(images, np.ndarray) else images
        if any(a is None for a in arrays) and (
            isinstance(images, str | os.PathLike) or len(image_arrays) != len(arrays)
        ):
            raise InputError(
                "labels: None (an unlabelled image) needs a list of image arrays of the same length"
            )
        paired = []
        for index, array in enumerate(arrays):
            if array is None:
                image = np.asarray(image_arrays[index])
                count = 1 if image.ndim == 2 else len(image)
                paired.extend((f"labels[{index}] (unlabelled)", None) for _ in range(count))
                continue
            array = check_label_ids(array, source=f"labels[{index}]")
            if array.ndim == 2:
                paired.append((f"labels[{index}]", array))
            else:
                paired.extend((f"labels[{index}][{z}]", plane) for z, plane in enumerate(array))
    check_pairs(named, paired)
    return paired


@dataclass
class TrainingData:
    """Everything a training mode needs from its inputs, checked and normalised."""

    count: int
    validation_count: int
    normalization: Normalization
    train_bank: ImageBank
    val_bank: ImageBank | None
    labelled_count: int = 0  # images with labels (partial labels: fewer than count)
    # partial labels: the labelled training images alone, so a step can draw from them
    labelled_bank: ImageBank | None = None


def prepare_training_data(
    images: ImagesLike,
    labels: LabelsLike | None,
    *,
    min_size: int,
    val_fraction: float,
    seed: int,
    normalization: Normalization | None = None,
    target: SegTarget = "foreground",
    ignore_label: int | None = None,
    labelled_only: bool = False,
) -> TrainingData:
    """Load, check, split by image and normalise (statistics of the training split).

    With labels, each image carries a target and a weight plane
    (:func:`semdenoise.models.targets.encode_labels`); ``labelled_only`` drops the
    unlabelled images (a segmenter has nothing to learn from them).
    """
    named = load_training_images(images, min_size=min_size)
    named_labels = load_training_labels(labels, images, named) if labels is not None else None
    if named_labels is not None:
        labelled = [i for i, (_, plane) in enumerate(named_labels) if plane is not None]
        if not labelled:
            raise InputError("labels: no image has labels")
        if labelled_only:
            named = [named[i] for i in labelled]
            named_labels = [named_labels[i] for i in labelled]
    train_ids, val_ids = split_by_image(len(named), val_fraction, seed=seed)
    if normalization is None:
        normalization = Normalization.fit([named[i][1] for i in train_ids])

    def bank(ids: list[int]) -> ImageBank:
        planes = None
        if named_labels is not None:
            planes = [
                encode_labels(
                    named_labels[i][1],
                    named[i][1].shape,
                    target=target,
                    ignore_label=ignore_label,
                    source=named_labels[i][0],
                )
                for i in ids
            ]
        return ImageBank.from_arrays([normalization.normalize(named[i][1]) for i in ids], planes)

    labelled_train = [i for i in train_ids if named_labels and named_labels[i][1] is not None]
    partial = named_labels is not None and len(labelled_train) < len(train_ids)
    return TrainingData(
        labelled_bank=bank(labelled_train) if partial and labelled_train else None,
        count=len(named),
        validation_count=len(val_ids),
        normalization=normalization,
        train_bank=bank(train_ids),
        val_bank=bank(val_ids) if val_ids else None,
        labelled_count=0
        if named_labels is None
        else sum(plane is not None for _, plane in named_labels),
    )


def split_by_image(count: int, val_fraction: float, *, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation images; validation gets ⌊fraction·count⌋."""
    n_val = int(val_fraction * count)
    order = np.random.default_rng(seed).permutation(count)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


# ----- 3-D: each file or array is one (Z, Y, X) volume ------------------------------


def _volume_min_shape(unet: UNetConfig) -> tuple[int, int, int]:
    return (unet.min_size_z, unet.min_size, unet.min_size)


def check_volume(volume: np.ndarray, unet: UNetConfig, *, source: str) -> None:
    """Refuse a 2-D image or a volume smaller than the 3-D network needs, in one line."""
    if volume.ndim != 3:
        raise InputError(
            f"{source}: {volume.ndim}-D image of shape {volume.shape}; a 3-D network "
            "trains on (Z, Y, X) volumes (one per file), use --dims 2 for 2-D images"
        )
    needed = _volume_min_shape(unet)
    if any(side < need for side, need in zip(volume.shape, needed, strict=True)):
        hint = (
            "; fewer Z slices need --xy-only-levels (pool in Y/X only) or a smaller --depth"
            if volume.shape[0] < needed[0]
            else ""
        )
        raise InputError(
            f"{source}: volume of {'x'.join(map(str, volume.shape))} voxels is smaller than "
            f"the {'x'.join(map(str, needed))} this network needs{hint}"
        )


def load_training_volumes(images: ImagesLike, unet: UNetConfig) -> list[tuple[str, np.ndarray]]:
    """Named, checked (Z, Y, X) float32 volumes: a file or folder of files, a 3-D array
    or a list of them. Unlike 2-D training, a stack is one volume, not many images."""
    if isinstance(images, str | os.PathLike):
        path = Path(images)
        if path.is_dir() and path.suffix.lower() != ".zarr":
            files = list_image_files(path)
            if not files:
                raise InputError(f"{path}: folder holds no image files")
        else:
            files = [path]
        named = [(str(file), read_image(file)) for file in files]
    else:
        arrays = [images] if isinstance(images, np.ndarray) else list(images)
        if not arrays:
            raise InputError("training volumes: empty list")
        named = [
            (f"volumes[{index}]", check_image(array, source=f"volumes[{index}]"))
            for index, array in enumerate(arrays)
        ]
    for source, volume in named:
        check_volume(volume, unet, source=source)
        check_not_constant(volume, source=source)
    return named


def split_volumes(
    named: list[tuple[str, np.ndarray]], val_fraction: float, *, seed: int, unet: UNetConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Training and validation volumes.

    With enough volumes, whole ones are held out (as 2-D holds out whole images). With
    fewer (typically a single volume), a slab of ``val_fraction`` at the end of each
    volume's longest axis is held out, when both parts stay large enough for the net.
    """
    n_val = int(val_fraction * len(named))
    if n_val >= 1 or val_fraction == 0:
        train_ids, val_ids = split_by_image(len(named), val_fraction, seed=seed)
        return [named[i][1] for i in train_ids], [named[i][1] for i in val_ids]
    needed = _volume_min_shape(unet)
    train, val = [], []
    for source, volume in named:
        axis = int(np.argmax(volume.shape))
        extent = volume.shape[axis]
        slab = max(math.ceil(val_fraction * extent), needed[axis])
        if extent - slab < needed[axis]:
            logger.info("%s: too small to hold out a validation slab", source)
            train.append(volume)
            continue
        first, second = np.split(volume, [extent - slab], axis=axis)
        train.append(first)
        val.append(second)
    return train, val


def prepare_training_volumes(
    images: ImagesLike, *, unet: UNetConfig, val_fraction: float, seed: int
) -> TrainingData:
    """Load, check, split and normalise 3-D training volumes (statistics of the
    training part)."""
    named = load_training_volumes(images, unet)
    train, val = split_volumes(named, val_fraction, seed=seed, unet=unet)
    normalization = Normalization.fit(train)
    return TrainingData(
        count=len(named),
        validation_count=len(val),
        normalization=normalization,
        train_bank=ImageBank.from_arrays([normalization.normalize(v) for v in train]),
        val_bank=(
            ImageBank.from_arrays([normalization.normalize(v) for v in val]) if val else None
        ),
    )
