"""Training images and labels from files or arrays: loaded, checked, split, normalised.

What comes out is a :class:`TrainingData` whose image banks
(:class:`semdenoise.training.sampling.ImageBank`) the training step samples from.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semdenoise.config import UNetConfig
from semdenoise.errors import InputError
from semdenoise.io.axes import Layout, named_planes, without_channels
from semdenoise.io.checks import (
    check_image,
    check_label_ids,
    check_min_size,
    check_not_constant,
    check_pairs,
)
from semdenoise.io.images import (
    SUPPORTED_INPUTS,
    input_files,
    list_image_files,
    read_image,
    read_label_ids,
    read_training_images,
    read_training_labels,
)
from semdenoise.models.normalization import Normalization
from semdenoise.models.targets import SegTarget, encode_labels
from semdenoise.training.sampling import ImageBank
from semdenoise.training.streaming import (
    STREAM_ABOVE_BYTES,
    BlockCache,
    LazyImage,
    StreamedBank,
    fit_normalization,
    float32_bytes,
    lazy_images,
    pair_labels,
)

logger = logging.getLogger(__name__)

ImagesLike = str | os.PathLike | np.ndarray | Sequence[np.ndarray]


def load_training_images(
    images: ImagesLike, *, min_size: int, axes: str | None = None
) -> list[tuple[str, np.ndarray]]:
    """Named, checked 2-D float32 training images from a path, an array or a list of arrays.

    A (Z, Y, X) array or stack file contributes every slice as one image; declared
    ``axes`` (io/axes.py) every image over S, T and Z, (C, Y, X) with several channels.
    """
    if isinstance(images, str | os.PathLike):
        named = read_training_images(images, axes=axes)
    else:
        arrays = [images] if isinstance(images, np.ndarray) else list(images)
        if not arrays:
            raise InputError("training images: empty list")
        named = []
        for index, array in enumerate(arrays):
            source = f"images[{index}]"
            named.extend(
                named_planes(check_image(array, source=source, axes=axes), axes, source=source)
            )
    for source, image in named:
        check_min_size(image, min_size, source=source)
        check_not_constant(image, source=source)
    return named


def image_channels(named: list[tuple[str, np.ndarray]], *, spatial: int = 2) -> int:
    """The channels every named image has (1 without a channel axis); a mismatch is a
    one-line error naming the first odd image."""
    counts = [image.shape[0] if image.ndim > spatial else 1 for _, image in named]
    for (source, _), count in zip(named, counts, strict=True):
        if count != counts[0]:
            raise InputError(
                f"{source}: {count} channel(s), but {named[0][0]} has {counts[0]}: every "
                "training image needs the same channels"
            )
    return counts[0]


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


def _label_files_by_stem(images: Path, labels: Path) -> tuple[list[Path], dict[str, Path]]:
    """The image files of a folder and the label file of each stem that has one."""
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
    return image_files, by_stem


def _labels_by_stem(
    images: Path, labels: Path, named: list[tuple[str, np.ndarray]], axes: str | None
) -> NamedLabels:
    """Partial labels: each label file pairs with the image file of the same stem; an
    image without one is unlabelled (``None`` for each of its slices)."""
    image_files, by_stem = _label_files_by_stem(images, labels)
    paired: NamedLabels = []
    for file in image_files:
        count = _slice_count(named, file)
        if file.stem not in by_stem:
            paired.extend((f"{file} (unlabelled)", None) for _ in range(count))
            continue
        slices = read_training_labels(by_stem[file.stem], axes=axes)
        if len(slices) != count:
            raise InputError(
                f"{by_stem[file.stem]}: {len(slices)} label slice(s) for the {count} slice(s) "
                f"of {file}"
            )
        paired.extend(slices)
    return paired


def load_training_labels(
    labels: LabelsLike,
    images: ImagesLike,
    named: list[tuple[str, np.ndarray]],
    *,
    axes: str | None = None,
) -> NamedLabels:
    """Named label slices (values kept) matching the named image slices one to one.

    A labels folder beside an images folder pairs files by stem, so some images may be
    unlabelled; in a list of arrays, ``None`` marks an unlabelled image. ``axes`` are
    the images' (the labels have the same, less C).
    """
    label_axes = without_channels(axes)
    labels_folder, images_folder = _folder(labels), _folder(images)
    if labels_folder is not None and images_folder is not None:
        paired = _labels_by_stem(images_folder, labels_folder, named, label_axes)
    elif isinstance(labels, str | os.PathLike):
        paired = list(read_training_labels(labels, axes=label_axes))
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
            source = f"labels[{index}]"
            if array is None:  # as many unlabelled slices as the image has images
                image = np.asarray(image_arrays[index])
                count = len(named_planes(image, axes, source=f"images[{index}]"))
                paired.extend((f"{source} (unlabelled)", None) for _ in range(count))
                continue
            array = check_label_ids(array, source=source, axes=label_axes)
            paired.extend(named_planes(array, label_axes, source=source))
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
    channels: int = 1  # image channels (declared axes with C)
    # how the images were read, for the model's record (streamed: see training/streaming.py)
    loading: dict = field(default_factory=lambda: {"streamed": False})


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
    background_labels: Sequence[int] = (0,),
    labelled_only: bool = False,
    axes: str | None = None,
    stream: bool | None = False,
    cache_mb: int = 512,
) -> TrainingData:
    """Load, check, split by image and normalise (statistics of the training split).

    With labels, each image carries a target and a weight plane
    (:func:`semdenoise.models.targets.encode_labels`); ``labelled_only`` drops the
    unlabelled images (a segmenter has nothing to learn from them). ``axes``: the
    images' declared axes (io/axes.py); with C, images have channels. ``stream``
    (None: when the files are large, see :func:`wants_streaming`) reads Zarr/TIFF
    files lazily instead, with ``cache_mb`` of decoded chunks.
    """
    if wants_streaming(images, stream, axes=axes):
        return prepare_streamed_data(
            images,
            labels,
            dims=2,
            check=lambda image: check_min_size(image, min_size, source=image.source),
            val_fraction=val_fraction,
            seed=seed,
            normalization=normalization,
            target=target,
            ignore_label=ignore_label,
            background_labels=background_labels,
            labelled_only=labelled_only,
            axes=axes,
            cache_mb=cache_mb,
        )
    named = load_training_images(images, min_size=min_size, axes=axes)
    channels = image_channels(named)
    named_labels = (
        load_training_labels(labels, images, named, axes=axes) if labels is not None else None
    )
    if named_labels is not None:
        labelled = [i for i, (_, plane) in enumerate(named_labels) if plane is not None]
        if not labelled:
            raise InputError("labels: no image has labels")
        if labelled_only:
            named = [named[i] for i in labelled]
            named_labels = [named_labels[i] for i in labelled]
    train_ids, val_ids = split_by_image(len(named), val_fraction, seed=seed)
    if normalization is None:
        normalization = Normalization.fit([named[i][1] for i in train_ids], channels=channels)
    elif normalization.channels != channels:
        raise InputError(
            f"training images have {channels} channel(s), the model {normalization.channels}"
        )

    def bank(ids: list[int]) -> ImageBank:
        planes = None
        if named_labels is not None:
            planes = [
                encode_labels(
                    named_labels[i][1],
                    named[i][1].shape[-2:],
                    target=target,
                    ignore_label=ignore_label,
                    background_labels=background_labels,
                    source=named_labels[i][0],
                )
                for i in ids
            ]
        return ImageBank.from_arrays(
            [normalization.normalize(named[i][1]) for i in ids], planes, channels=channels
        )

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
        channels=channels,
    )


def split_by_image(count: int, val_fraction: float, *, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation images; validation gets ⌊fraction·count⌋."""
    n_val = int(val_fraction * count)
    order = np.random.default_rng(seed).permutation(count)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


# ----- 3-D: each file or array is one (Z, Y, X) volume ------------------------------


def _volume_min_shape(unet: UNetConfig) -> tuple[int, int, int]:
    return (unet.min_size_z, unet.min_size, unet.min_size)


def check_volume(volume: np.ndarray, unet: UNetConfig, *, source: str, channels: int = 1) -> None:
    """Refuse a 2-D image or a volume smaller than the 3-D network needs, in one line
    (a volume with ``channels`` > 1 has its channel axis first)."""
    if channels > 1:
        volume = volume[0]
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


def _volumes_of(
    arrays: list[tuple[str, np.ndarray]], axes: str | None
) -> list[tuple[str, np.ndarray]]:
    """One named (Z, Y, X) or (C, Z, Y, X) volume per sample of each named array."""
    if axes is None:
        return arrays
    named = []
    for source, array in arrays:
        parts = Layout.of(array, axes, volume=True, source=source).volumes(array)
        named.extend(
            (source if len(parts) == 1 else f"{source}[{s}]", v) for s, v in enumerate(parts)
        )
    return named


def load_training_volumes(
    images: ImagesLike, unet: UNetConfig, *, axes: str | None = None
) -> list[tuple[str, np.ndarray]]:
    """Named, checked (Z, Y, X) float32 volumes: a file or folder of files, a 3-D array
    or a list of them. Unlike 2-D training, a stack is one volume, not many images.
    Declared ``axes`` (io/axes.py): one volume per sample, (C, Z, Y, X) with channels."""
    if isinstance(images, str | os.PathLike):
        arrays = [(str(file), read_image(file, axes=axes)) for file in input_files(images)]
    else:
        given = [images] if isinstance(images, np.ndarray) else list(images)
        if not given:
            raise InputError("training volumes: empty list")
        arrays = [
            (f"volumes[{index}]", check_image(array, source=f"volumes[{index}]", axes=axes))
            for index, array in enumerate(given)
        ]
    named = _volumes_of(arrays, axes)
    channels = image_channels(named, spatial=3)
    for source, volume in named:
        check_volume(volume, unet, source=source, channels=channels)
        check_not_constant(volume, source=source)
    return named


def load_training_label_volumes(
    labels: LabelsLike,
    images: ImagesLike,
    named: list[tuple[str, np.ndarray]],
    *,
    axes: str | None = None,
) -> NamedLabels:
    """Label volumes (values kept) matching the named volumes one to one, each of the
    same (Z, Y, X) shape; ``None`` for an unlabelled volume (a labels folder beside an
    images folder pairs files by stem, as in 2-D; a list of arrays may hold ``None``).
    A shape that does not match is a one-line error naming both."""
    label_axes = without_channels(axes)
    labels_folder, images_folder = _folder(labels), _folder(images)
    if labels_folder is not None and images_folder is not None:
        by_stem = {file.stem: file for file in list_image_files(labels_folder)}
        stray = sorted(set(by_stem) - {f.stem for f in list_image_files(images_folder)})
        if stray:
            raise InputError(
                f"{by_stem[stray[0]]}: no image named {stray[0]!r} in {images_folder} "
                "(labels pair with images by file name)"
            )
        arrays: list[tuple[str, np.ndarray | None]] = []
        for file in list_image_files(images_folder):
            if file.stem not in by_stem:
                arrays.append((f"{file} (unlabelled)", None))
            else:
                label_file = by_stem[file.stem]
                arrays.append((str(label_file), read_label_ids(label_file, axes=label_axes)))
    elif isinstance(labels, str | os.PathLike):
        arrays = [
            (str(file), read_label_ids(file, axes=label_axes)) for file in input_files(labels)
        ]
    else:
        given = [labels] if isinstance(labels, np.ndarray) else list(labels)
        arrays = [
            (f"labels[{i}]", None if a is None else check_label_ids(a, source=f"labels[{i}]"))
            for i, a in enumerate(given)
        ]
    paired: NamedLabels = []
    for source, array in arrays:
        if array is None:
            paired.append((source, None))
        else:
            paired.extend(_volumes_of([(source, array)], label_axes))
    if len(paired) != len(named):
        raise InputError(
            f"{len(paired)} label volume(s) for {len(named)} image volume(s): labels must "
            "match the volumes one to one"
        )
    for (image_source, volume), (label_source, label) in zip(named, paired, strict=True):
        if label is not None and label.shape != volume.shape[-3:]:
            raise InputError(
                f"{label_source}: labels of shape {label.shape} do not match the volume "
                f"{image_source} of shape {volume.shape[-3:]}"
            )
    return paired


def split_volumes(
    named: list[tuple[str, np.ndarray]],
    val_fraction: float,
    *,
    seed: int,
    unet: UNetConfig,
    planes: Sequence[Sequence[np.ndarray]] | None = None,
) -> tuple[list, list]:
    """Training and validation volumes.

    With enough volumes, whole ones are held out (as 2-D holds out whole images). With
    fewer (typically a single volume), a slab of ``val_fraction`` at the end of each
    volume's longest axis is held out, when both parts stay large enough for the net.
    ``planes``: per volume, (Z, Y, X) arrays split exactly as it is (the label target
    and weight); then each part is a tuple (volume, *its planes).
    """
    parts = [
        (volume, *(planes[i] if planes is not None else ())) for i, (_, volume) in enumerate(named)
    ]

    def result(items: list[tuple]) -> list:
        return items if planes is not None else [item[0] for item in items]

    n_val = int(val_fraction * len(named))
    if n_val >= 1 or val_fraction == 0:
        train_ids, val_ids = split_by_image(len(named), val_fraction, seed=seed)
        return result([parts[i] for i in train_ids]), result([parts[i] for i in val_ids])
    train, val = [], []
    for (source, volume), part in zip(named, parts, strict=True):
        cut = validation_slab(volume.shape, val_fraction, unet)
        if cut is None:
            logger.info("%s: too small to hold out a validation slab", source)
            train.append(part)
            continue
        axis, at = cut
        halves = [np.split(a, [at], axis=a.ndim - 3 + axis) for a in part]
        train.append(tuple(h[0] for h in halves))
        val.append(tuple(h[1] for h in halves))
    return result(train), result(val)


def validation_slab(
    shape: Sequence[int], val_fraction: float, unet: UNetConfig
) -> tuple[int, int] | None:
    """Where to cut a volume of ``shape`` (..., Z, Y, X) for a validation slab: the
    spatial axis (its longest) and the index the slab starts at; None if too small."""
    spatial = tuple(shape[-3:])
    axis = int(np.argmax(spatial))
    extent, need = spatial[axis], _volume_min_shape(unet)[axis]
    slab = max(math.ceil(val_fraction * extent), need)
    return None if extent - slab < need else (axis, extent - slab)


def prepare_training_volumes(
    images: ImagesLike,
    labels: LabelsLike | None = None,
    *,
    unet: UNetConfig,
    val_fraction: float,
    seed: int,
    normalization: Normalization | None = None,
    target: SegTarget = "foreground",
    ignore_label: int | None = None,
    background_labels: Sequence[int] = (0,),
    labelled_only: bool = False,
    axes: str | None = None,
    stream: bool | None = False,
    cache_mb: int = 512,
) -> TrainingData:
    """Load, check, split and normalise 3-D training volumes (statistics of the
    training part).

    With labels, each volume carries a target and a weight volume
    (:func:`semdenoise.models.targets.encode_labels`) that are split with it, so a
    held-out slab keeps its own labels; a slab without any labelled voxel validates
    with a segmentation loss of 0. ``labelled_only`` drops unlabelled volumes.
    ``stream``, ``cache_mb`` as in :func:`prepare_training_data` (volumes without labels).
    """
    if wants_streaming(images, stream, axes=axes):
        if labels is not None:
            raise InputError(
                "streamed 3-D training takes volumes without labels (train n2v --dims 3); "
                "3-D seg and joint load their volumes in memory (--no-stream)"
            )
        return prepare_streamed_data(
            images,
            None,
            dims=3,
            check=lambda volume: check_volume(volume, unet, source=volume.source),
            val_fraction=val_fraction,
            seed=seed,
            axes=axes,
            cache_mb=cache_mb,
            unet=unet,
        )
    named = load_training_volumes(images, unet, axes=axes)
    channels = image_channels(named, spatial=3)
    planes = None
    labelled_count = 0
    if labels is not None:
        named_labels = load_training_label_volumes(labels, images, named, axes=axes)
        labelled = [i for i, (_, label) in enumerate(named_labels) if label is not None]
        if not labelled:
            raise InputError("labels: no volume has labels")
        if labelled_only:
            named = [named[i] for i in labelled]
            named_labels = [named_labels[i] for i in labelled]
        labelled_count = len(labelled)
        planes = [
            encode_labels(
                label,
                volume.shape[-3:],
                target=target,
                ignore_label=ignore_label,
                background_labels=background_labels,
                source=label_source,
            )
            for (_, volume), (label_source, label) in zip(named, named_labels, strict=True)
        ]
        if not any(weight.any() for _, weight in planes):
            raise InputError(
                f"labels: no labelled voxel (every value is --ignore-label {ignore_label})"
            )
    train, val = split_volumes(named, val_fraction, seed=seed, unet=unet, planes=planes)
    if planes is None:
        train, val = [(v,) for v in train], [(v,) for v in val]
    if normalization is None:
        normalization = Normalization.fit([part[0] for part in train], channels=channels)
    elif normalization.channels != channels:
        raise InputError(
            f"training volumes have {channels} channel(s), the model {normalization.channels}"
        )

    def bank(parts: list[tuple]) -> ImageBank:
        normalized = [normalization.normalize(part[0]) for part in parts]
        encoded = [tuple(part[1:]) for part in parts] if planes is not None else None
        return ImageBank.from_arrays(normalized, encoded, channels=channels)

    return TrainingData(
        count=len(named),
        validation_count=len(val),
        normalization=normalization,
        train_bank=bank(train),
        val_bank=bank(val) if val else None,
        labelled_count=labelled_count,
        channels=channels,
    )


# ----- streamed: files read lazily, crop by crop (training/streaming.py) ---------------


def wants_streaming(images: ImagesLike, stream: bool | None, *, axes: str | None) -> bool:
    """Whether to stream: as asked, or (None) when the files' float32 size exceeds
    ``STREAM_ABOVE_BYTES`` and every file is Zarr or TIFF."""
    if stream is False:
        return False
    if not isinstance(images, str | os.PathLike):
        if stream:
            raise InputError(
                "--stream reads Zarr or TIFF files; arrays in memory train as they are"
            )
        return False
    if stream:
        return True
    if not Path(images).exists():
        return False  # the in-memory reader says so
    size = float32_bytes(input_files(images), as_stored=axes is not None)
    if size is None or size <= STREAM_ABOVE_BYTES:
        return False
    logger.info("%s: %.1f GiB as float32, streamed (--no-stream loads it)", images, size / 2**30)
    return True


def _streamed_labels(
    labels: LabelsLike,
    images: ImagesLike,
    per_file: list[list[LazyImage]],
    *,
    dims: int,
    axes: str | None,
) -> list[LazyImage | None]:
    """Lazy labels for lazy images: one file or Zarr per image file, paired by stem when
    both are folders (an image without a label file is unlabelled)."""
    if not isinstance(labels, str | os.PathLike):
        raise InputError("labels: streamed training reads labels from files, like its images")
    label_axes = without_channels(axes)
    images_folder, labels_folder = _folder(images), _folder(labels)
    flat = [image for group in per_file for image in group]
    if images_folder is None or labels_folder is None:
        paired = lazy_images(input_files(labels), dims=dims, axes=label_axes)
        return pair_labels(flat, paired)
    image_files, by_stem = _label_files_by_stem(images_folder, labels_folder)
    paired: list[LazyImage | None] = []
    for file, group in zip(image_files, per_file, strict=True):
        if file.stem not in by_stem:
            paired.extend(None for _ in group)
            continue
        found = lazy_images([by_stem[file.stem]], dims=dims, axes=label_axes)
        paired.extend(pair_labels(group, found))
    return paired


def prepare_streamed_data(
    images: ImagesLike,
    labels: LabelsLike | None,
    *,
    dims: int,
    check,
    val_fraction: float,
    seed: int,
    normalization: Normalization | None = None,
    target: SegTarget = "foreground",
    ignore_label: int | None = None,
    background_labels: Sequence[int] = (0,),
    labelled_only: bool = False,
    axes: str | None = None,
    cache_mb: int = 512,
    unet: UNetConfig | None = None,
) -> TrainingData:
    """The streamed counterpart of :func:`prepare_training_data` (``dims`` 2) and
    :func:`prepare_training_volumes` (3): the same split, banks that read lazily.
    ``check`` refuses an image too small for the network (shapes only: pixels are
    checked as they are read)."""
    per_file = [lazy_images([file], dims=dims, axes=axes) for file in input_files(images)]
    lazy = [image for group in per_file for image in group]
    for image in lazy:
        check(image)
    paired = (
        _streamed_labels(labels, images, per_file, dims=dims, axes=axes)
        if labels is not None
        else None
    )
    if paired is not None:
        labelled = [i for i, label in enumerate(paired) if label is not None]
        if not labelled:
            raise InputError("labels: no image has labels")
        if labelled_only:
            lazy, paired = [lazy[i] for i in labelled], [paired[i] for i in labelled]
    if dims == 2:
        train_ids, val_ids = split_by_image(len(lazy), val_fraction, seed=seed)
        train, val = [lazy[i] for i in train_ids], [lazy[i] for i in val_ids]
        train_labels = None if paired is None else [paired[i] for i in train_ids]
        val_labels = None if paired is None else [paired[i] for i in val_ids]
    else:
        train, val = _split_lazy_volumes(lazy, val_fraction, seed=seed, unet=unet)
        train_labels = val_labels = None
    cache = BlockCache(cache_mb * 2**20)
    pixels = None
    if normalization is None:
        normalization, pixels = fit_normalization(train, cache, seed=seed)

    def bank(chosen: list[LazyImage], chosen_labels) -> StreamedBank:
        return StreamedBank(
            chosen,
            normalization,
            cache,
            labels=chosen_labels,
            target=target,
            ignore_label=ignore_label,
            background_labels=background_labels,
        )

    labelled_train = (
        [i for i, label in enumerate(train_labels) if label is not None] if train_labels else []
    )
    partial = train_labels is not None and len(labelled_train) < len(train)
    return TrainingData(
        count=len(lazy),
        validation_count=len(val),
        normalization=normalization,
        train_bank=bank(train, train_labels),
        val_bank=bank(val, val_labels) if val else None,
        labelled_count=0 if paired is None else sum(label is not None for label in paired),
        labelled_bank=bank(
            [train[i] for i in labelled_train], [train_labels[i] for i in labelled_train]
        )
        if partial and labelled_train
        else None,
        channels=1,
        loading={"streamed": True, "normalization_pixels": pixels, "cache_mb": cache_mb},
    )


def _split_lazy_volumes(
    volumes: list[LazyImage], val_fraction: float, *, seed: int, unet: UNetConfig
) -> tuple[list[LazyImage], list[LazyImage]]:
    """:func:`split_volumes` for lazy volumes: whole ones held out, or slabs."""
    if int(val_fraction * len(volumes)) >= 1 or val_fraction == 0:
        train_ids, val_ids = split_by_image(len(volumes), val_fraction, seed=seed)
        return [volumes[i] for i in train_ids], [volumes[i] for i in val_ids]
    train, val = [], []
    for volume in volumes:
        cut = validation_slab(volume.shape, val_fraction, unet)
        if cut is None:
            logger.info("%s: too small to hold out a validation slab", volume.source)
            train.append(volume)
            continue
        first, second = volume.split(*cut)
        train.append(first)
        val.append(second)
    return train, val
