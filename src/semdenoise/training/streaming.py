"""Training images read lazily from files larger than memory.

A Zarr / OME-Zarr array or a TIFF (through tifffile's Zarr view) is opened, never
loaded: each step cuts its random crops out of chunk-aligned blocks kept in a bounded
least-recently-used cache, so memory follows the crop, the batch and the cache
(``--cache-mb``), not the dataset. The crops are drawn with the same random numbers as
:class:`~semdenoise.training.sampling.ImageBank` draws them, so on data that fits in
memory both give the same batches, and the same model.

Normalisation statistics come from every pixel when the training images hold at most
``NORMALIZATION_SAMPLE`` pixels (they then equal the in-memory ones), otherwise from
seeded random windows of that many pixels in all; the model file records how many.
"""

from __future__ import annotations

import itertools
import logging
import math
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semdenoise.errors import InputError, system_failure
from semdenoise.io.axes import parse_axes
from semdenoise.io.checks import check_label_ids
from semdenoise.models.normalization import Normalization
from semdenoise.models.targets import SegTarget, encode_labels

logger = logging.getLogger(__name__)

STREAM_ABOVE_BYTES = 2 * 1024**3  # auto: stream images whose float32 size exceeds this
STREAMABLE = (".zarr", ".tif", ".tiff")
DEFAULT_CROP_2D = 256  # whole images of any size do not fit a step: 2-D streams crops
NORMALIZATION_SAMPLE = 16_000_000  # pixels read to fit the normalisation
SAMPLE_WINDOW = {2: (256, 256), 3: (16, 128, 128)}  # windows of that sample
VIEW_LIMIT = {2: (1024, 1024), 3: (64, 256, 256)}  # image(i): a centre window at most this


# ----- opening files lazily ---------------------------------------------------------


def open_lazy(path: Path, *, as_stored: bool = False) -> Any:
    """An array-like (``shape``, ``dtype``, ``chunks``, NumPy indexing) over a Zarr store
    or a TIFF file, reading nothing yet; a one-line InputError if it cannot be opened."""
    suffix = path.suffix.lower()
    if suffix not in STREAMABLE:
        raise InputError(
            f"{path}: streamed training reads {', '.join(STREAMABLE)} files; load "
            f"{suffix or 'this file'} in memory (--no-stream) or convert it to Zarr"
        )
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    try:
        if suffix == ".zarr":
            from semdenoise.io.ome_zarr import open_image

            array = open_image(path, as_stored=as_stored)[0]
        else:
            import tifffile
            import zarr

            store = tifffile.imread(path, aszarr=True)
            node = zarr.open(store, mode="r")
            array = node if isinstance(node, zarr.Array) else node["0"]  # a pyramid's level 0
            weakref.finalize(array, store.close)  # the file stays open while it is read
    except InputError:
        raise
    except Exception as e:
        reason = system_failure(e) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise InputError(f"{path}: cannot open for streamed training: {reason}") from e
    dtype = np.dtype(array.dtype)
    if dtype.kind == "b" or not (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
    ):
        raise InputError(f"{path}: unsupported pixel type {dtype}, expected int or float")
    return array


@dataclass(frozen=True)
class LazyImage:
    """One training image (2-D) or volume (3-D) inside a lazily opened array: the
    indices of its leading axes and its box along the spatial ones."""

    source: str  # for messages
    array: Any
    lead: tuple[int, ...]
    box: tuple[tuple[int, int], ...]  # (start, stop) per spatial axis

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(stop - start for start, stop in self.box)

    @property
    def ndim(self) -> int:
        return len(self.box)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def split(self, axis: int, at: int) -> tuple[LazyImage, LazyImage]:
        """The image cut in two along spatial ``axis`` at ``at`` (a validation slab)."""
        start, stop = self.box[axis]
        first = self.box[:axis] + ((start, start + at),) + self.box[axis + 1 :]
        second = self.box[:axis] + ((start + at, stop),) + self.box[axis + 1 :]
        return replace(self, box=first), replace(self, box=second)

    def key(self, window: Sequence[slice]) -> tuple[Any, ...]:
        """The array index of ``window`` (image coordinates)."""
        return self.lead + tuple(
            slice(start + w.start, start + w.stop)
            for (start, _), w in zip(self.box, window, strict=True)
        )


def _spatial_axes(path: Path, array: Any, axes: str | None, dims: int) -> None:
    """Refuse layouts streaming does not take: channels, or spatial axes not last."""
    if axes is None:
        allowed = (2, 3) if dims == 2 else (3,)
        if array.ndim not in allowed:
            raise InputError(
                f"{path}: {array.ndim}-D array of shape {tuple(array.shape)}, expected "
                + ("(Y, X) or a stack (S, Y, X)" if dims == 2 else "one (Z, Y, X) volume")
                + "; declare other layouts with --axes"
            )
        return
    letters = parse_axes(axes, source=str(path))
    spatial = "YX" if dims == 2 else "ZYX"
    if len(letters) != array.ndim:
        raise InputError(
            f"{path}: axes {axes!r} name {len(letters)} axes, the array has {array.ndim} "
            f"(shape {tuple(array.shape)})"
        )
    if "C" in letters or not letters.endswith(spatial):
        raise InputError(
            f"{path}: streamed training takes one-channel images with {spatial} last (axes "
            f"{letters}); train in memory with --no-stream"
        )


def lazy_images(files: Sequence[Path], *, dims: int, axes: str | None = None) -> list[LazyImage]:
    """Every 2-D image (``dims`` 2: each plane of the leading axes) or 3-D volume of
    ``files``, named as the in-memory readers name them (``file`` or ``file[k]``)."""
    images = []
    for file in files:
        array = open_lazy(file, as_stored=axes is not None)
        _spatial_axes(file, array, axes, dims)
        lead_shape = tuple(array.shape[: array.ndim - dims])
        box = tuple((0, side) for side in array.shape[array.ndim - dims :])
        leads = list(itertools.product(*(range(n) for n in lead_shape)))
        for k, lead in enumerate(leads):
            name = str(file) if not lead_shape else f"{file}[{k}]"
            images.append(LazyImage(name, array, lead, box))
    return images


def float32_bytes(files: Sequence[Path], *, as_stored: bool = False) -> int | None:
    """What ``files`` would take in memory as float32, or None if one is not streamable."""
    total = 0
    for file in files:
        if file.suffix.lower() not in STREAMABLE:
            return None
        try:
            total += 4 * math.prod(open_lazy(file, as_stored=as_stored).shape)
        except InputError:
            return None  # the in-memory reader says what is wrong with it
    return total


def pair_labels(images: list[LazyImage], labels: list[LazyImage | None]) -> list[LazyImage | None]:
    """Labels matching images one to one in count and shape (None: unlabelled)."""
    if len(labels) != len(images):
        raise InputError(
            f"{len(labels)} label slice(s) for {len(images)} image slice(s): labels must "
            "match images one to one"
        )
    for image, label in zip(images, labels, strict=True):
        if label is not None and label.shape != image.shape:
            raise InputError(
                f"{label.source}: labels of shape {label.shape} do not match "
                f"{image.source} of shape {image.shape}"
            )
    return labels


# ----- reading through a bounded cache ------------------------------------------------


class BlockCache:
    """Decoded chunk-aligned blocks, least recently used first out, at most ``max_bytes``.

    Random crops revisit the chunks around them; decoding a chunk costs far more than
    copying from it. A block larger than a quarter of the cache is not kept: the window
    is read straight from the array (its codec decodes what it needs).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.blocks: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self.bytes = 0
        self.reads = 0  # blocks decoded (misses)

    def read(self, image: LazyImage, window: Sequence[slice]) -> np.ndarray:
        """``window`` (image coordinates) of ``image`` in the array's own dtype."""
        array = image.array
        key = image.key(window)
        chunks = tuple(getattr(array, "chunks", None) or array.shape)
        block_bytes = math.prod(chunks) * np.dtype(array.dtype).itemsize
        if block_bytes > self.max_bytes // 4:
            return np.asarray(array[key])
        extents = [(i, i + 1) for i in image.lead] + [
            (s.start, s.stop) for s in key[len(image.lead) :]
        ]
        out = np.empty([stop - start for start, stop in extents[len(image.lead) :]], array.dtype)
        ranges = [
            range(start // c, (stop - 1) // c + 1)
            for (start, stop), c in zip(extents, chunks, strict=True)
        ]
        for index in itertools.product(*ranges):
            block = self._block(array, index, chunks)
            src, dst = [], []
            for axis, ((start, stop), c, i) in enumerate(zip(extents, chunks, index, strict=True)):
                low, high = max(start, i * c), min(stop, (i + 1) * c)
                src.append(slice(low - i * c, high - i * c))
                if axis >= len(image.lead):
                    dst.append(slice(low - start, high - start))
            out[tuple(dst)] = block[tuple(src)].reshape(out[tuple(dst)].shape)
        return out

    def _block(self, array: Any, index: tuple[int, ...], chunks: tuple[int, ...]) -> np.ndarray:
        key = (id(array), index)
        block = self.blocks.get(key)
        if block is not None:
            self.blocks.move_to_end(key)
            return block
        region = tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(index, chunks, array.shape, strict=True)
        )
        block = np.asarray(array[region])
        self.reads += 1
        self.blocks[key] = block
        self.bytes += block.nbytes
        while self.bytes > self.max_bytes and len(self.blocks) > 1:
            _, dropped = self.blocks.popitem(last=False)
            self.bytes -= dropped.nbytes
        return block


def read_pixels(cache: BlockCache, image: LazyImage, window: Sequence[slice]) -> np.ndarray:
    """``window`` of ``image`` as float32; NaN/inf pixels are a one-line error naming it."""
    pixels = cache.read(image, window)
    if np.issubdtype(pixels.dtype, np.floating) and not np.isfinite(pixels).all():
        corner = tuple(w.start for w in window)
        raise InputError(f"{image.source}: NaN/inf pixel(s) in the window at {corner}")
    return pixels.astype(np.float32, copy=False)


def centre_window(shape: Sequence[int], limit: Sequence[int]) -> tuple[slice, ...]:
    """The central window of ``shape``, at most ``limit`` along each axis."""
    return tuple(
        slice((n - min(n, m)) // 2, (n - min(n, m)) // 2 + min(n, m))
        for n, m in zip(shape, limit, strict=True)
    )


def fit_normalization(
    images: Sequence[LazyImage], cache: BlockCache, *, seed: int
) -> tuple[Normalization, int]:
    """Statistics of ``images`` (see module doc) and how many pixels they came from."""
    total = sum(image.size for image in images)
    if total <= NORMALIZATION_SAMPLE:
        full = [read_pixels(cache, im, tuple(slice(0, n) for n in im.shape)) for im in images]
        return Normalization.fit(full), total
    rng = np.random.default_rng(seed)
    weights = np.array([image.size for image in images], dtype=np.float64)
    windows, count = [], 0
    while count < NORMALIZATION_SAMPLE:
        image = images[int(rng.choice(len(images), p=weights / weights.sum()))]
        size = [min(n, w) for n, w in zip(image.shape, SAMPLE_WINDOW[image.ndim], strict=True)]
        starts = [int(rng.integers(0, n - s + 1)) for n, s in zip(image.shape, size, strict=True)]
        window = tuple(slice(a, a + s) for a, s in zip(starts, size, strict=True))
        windows.append(read_pixels(cache, image, window))
        count += windows[-1].size
    logger.info("normalisation fitted on %d sampled pixels of %d", count, total)
    return Normalization.fit(windows), count


# ----- the bank -----------------------------------------------------------------------


class StreamedBank:
    """Training images (and labels) sampled lazily, with :class:`ImageBank`'s interface.

    Images of one shape form a group as ImageBank's stacks do, and crops are drawn with
    the same random numbers in the same order, so both banks give the same batches.
    Labels become (target, weight) planes crop by crop (``encode_labels``); for the
    instances target the label window is read with a one-pixel margin, so boundaries at
    the crop's edge are those of the whole image. ``weighted`` adds the weight plane
    (ignored pixels, unlabelled images).
    """

    def __init__(
        self,
        images: Sequence[LazyImage],
        normalization: Normalization,
        cache: BlockCache,
        *,
        labels: Sequence[LazyImage | None] | None = None,
        target: SegTarget = "foreground",
        ignore_label: int | None = None,
        background_labels: Sequence[int] = (0,),
    ) -> None:
        self.images = list(images)
        self.labels = None if labels is None else list(labels)
        self.normalization = normalization
        self.cache = cache
        self.target = target
        self.ignore_label = ignore_label
        self.background_labels = tuple(background_labels)
        self.weighted = labels is not None and (
            ignore_label is not None or any(label is None for label in labels)
        )
        self.channels = 1
        self.device = torch.device("cpu")
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(self.images):
            groups.setdefault(image.shape, []).append(index)
        self.groups = list(groups.values())

    def to(self, device: torch.device) -> StreamedBank:
        self.device = torch.device(device)
        return self

    @property
    def count(self) -> int:
        return len(self.images)

    def for_rank(self, rank: int, world: int) -> StreamedBank:
        """Process ``rank``'s share of a DDP run, as :meth:`ImageBank.for_rank` chooses
        it (every ``world``-th image in bank order, or all when there are fewer)."""
        if world <= 1 or self.count < world:
            return self
        order = [index for group in self.groups for index in group][rank::world]
        share = StreamedBank(
            [self.images[i] for i in order],
            self.normalization,
            self.cache,
            labels=None if self.labels is None else [self.labels[i] for i in order],
            target=self.target,
            ignore_label=self.ignore_label,
            background_labels=self.background_labels,
        )
        share.weighted, share.device = self.weighted, self.device
        return share

    def _planes(self, index: int, window: Sequence[slice]) -> np.ndarray:
        """The normalised image window, then its label planes, stacked (C, ...)."""
        image = self.images[index]
        planes = [self.normalization.normalize(read_pixels(self.cache, image, window))]
        if self.labels is not None:
            shape = planes[0].shape
            target, weight = self._label_planes(self.labels[index], window, shape)
            planes += [target, weight] if self.weighted else [target]
        return np.stack(planes)

    def _label_planes(
        self, label: LazyImage | None, window: Sequence[slice], shape: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        if label is None:
            return encode_labels(None, shape)
        margin = 1 if self.target == "instances" else 0
        wide = tuple(
            slice(max(0, w.start - margin), min(n, w.stop + margin))
            for w, n in zip(window, label.shape, strict=True)
        )
        ids = check_label_ids(self.cache.read(label, wide), source=label.source)
        target, weight = encode_labels(
            ids,
            ids.shape,
            target=self.target,
            ignore_label=self.ignore_label,
            background_labels=self.background_labels,
            source=label.source,
        )
        inner = tuple(
            slice(w.start - v.start, w.stop - v.start) for w, v in zip(window, wide, strict=True)
        )
        return target[inner], weight[inner]

    def image(self, index: int) -> torch.Tensor:
        """The ``index``-th image as a batch of one: its centre, at most ``VIEW_LIMIT``
        (validation and statistics stay bounded by it, whatever the image's size)."""
        image = self.images[index]
        window = centre_window(image.shape, VIEW_LIMIT[image.ndim])
        return torch.from_numpy(self._planes(index, window))[None].to(self.device)

    def sample(
        self, batch: int, crop_size: int | Sequence[int] | None, generator: torch.Generator
    ) -> torch.Tensor:
        """Random crops (2-D without a size: ``DEFAULT_CROP_2D``)."""
        return self.crops(batch, crop_size or DEFAULT_CROP_2D, generator)

    def crops(
        self, batch: int, size: int | Sequence[int], generator: torch.Generator
    ) -> torch.Tensor:
        """As :meth:`ImageBank.crops`, reading only the crops."""
        shapes = [self.images[group[0]].shape for group in self.groups]
        ndim = len(shapes[0])
        if isinstance(size, int):
            sizes = (min(size, *(min(shape) for shape in shapes)),) * ndim
        else:
            sizes = tuple(
                min(side, *(shape[axis] for shape in shapes)) for axis, side in enumerate(size)
            )
        areas = torch.tensor(
            [
                float(math.prod(shape) * len(group))
                for shape, group in zip(shapes, self.groups, strict=True)
            ],
            device=generator.device,
        )
        crops = []
        choice = torch.multinomial(areas, batch, replacement=True, generator=generator)
        for k in choice.tolist():
            group, shape = self.groups[k], shapes[k]
            u = torch.rand(1 + ndim, generator=generator, device=generator.device).tolist()
            index = group[int(u[0] * len(group))]
            window = tuple(
                slice(start, start + side)
                for side, extent, fraction in zip(sizes, shape, u[1:], strict=True)
                for start in [int(fraction * (extent - side + 1))]
            )
            crops.append(torch.from_numpy(self._planes(index, window)))
        return torch.stack(crops).to(self.device)

    def intensity_values(self, limit: int = 4_000_000) -> np.ndarray:
        """Normalised image values from the images' centres, up to about ``limit``."""
        values, count = [], 0
        for index in range(self.count):
            values.append(self.image(index)[0, : self.channels].reshape(-1).cpu().numpy())
            count += values[-1].size
            if count >= limit:
                break
        return np.concatenate(values)
