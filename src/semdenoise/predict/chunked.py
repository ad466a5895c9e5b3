"""Denoise a Zarr array larger than memory, chunk by chunk, on Dask.

Every chunk is read with a halo of the network's receptive radius
(``dask.array.map_overlap``), denoised by the same in-memory path as
:func:`semdenoise.predict.denoise` (same tiling, same stored normalisation) and written
straight into its region of the output Zarr, so memory follows the chunk and the tile,
never the image. A 2-D model works on (1, Y, X) chunks of a stack, with a halo in Y/X
only. Chunk origins and halos are multiples of the network's pooling cell, so the
result equals the in-memory one up to float rounding. When every chunk is written, the
downsampled levels of an OME-NGFF pyramid are computed from it, level by level
(:func:`semdenoise.io.ome_zarr.write_pyramid`), so viewers open the output at any zoom.

The output is built under a hidden sibling name (``.OUT.zarr.partial``) and moved into
place only when every chunk is written, so a reader never sees half an output. Each
written chunk leaves a marker file; a run that stops (killed, Ctrl-C, an error) resumes
where it stopped when started again with the same model, input and options.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semdenoise.errors import InputError, system_failure
from semdenoise.io.atomic import move_into_place, remove_stale_siblings
from semdenoise.io.ome_zarr import ImageSpace, create_level0, to_dask, write_pyramid
from semdenoise.models.trained import TrainedModel
from semdenoise.predict.denoise import as_model, denoise

logger = logging.getLogger(__name__)

PROGRESS_DIR = ".semdenoise-progress"
DEFAULT_CHUNK = 1024


def partial_path(target: str | os.PathLike) -> Path:
    """Where an unfinished output lives until it is complete."""
    target = Path(target)
    return target.with_name(f".{target.name}.partial")


@dataclass(frozen=True)
class _Plan:
    """What every chunk task needs; small and picklable (for distributed workers)."""

    model: TrainedModel
    source: str
    output: str
    chunks: tuple[tuple[int, ...], ...]
    halos: tuple[int, ...]
    options: dict[str, Any]
    on_chunk: Callable[[tuple[int, ...]], None] | None


def denoise_zarr(
    model: TrainedModel | str | os.PathLike,
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    chunk_depth: int = 1,
    scheduler: str | Any | None = None,
    workers: int | None = None,
    resume: bool = True,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    tta: bool = False,
    noise_sigma: float | str | None = None,
    posterior: bool = True,
    progress_every: float = 5.0,
    on_chunk: Callable[[tuple[int, ...]], None] | None = None,
) -> Path:
    """Denoise the Zarr array ``source`` into a new OME-Zarr ``target``, chunk by chunk.

    Parameters
    ----------
    source
        A Zarr array, or an OME-Zarr image whose full-resolution level is read (the
        singleton T and C axes of a TCZYX image squeezed away).
    target
        The output ``.zarr``: an OME-NGFF 0.5 multiscale pyramid (Zarr v3, compressed,
        chunked like the work) with the float32 result at ``0`` and its mean-downsampled
        levels at ``1``, ``2``, ... (:func:`semdenoise.io.ome_zarr.pyramid_factors`),
        in the input's axes, units, voxel size and origin.
    chunk_size, chunk_depth
        Y/X side and Z depth of the chunks worked on (and written); the Y/X side is
        rounded up to the network's pooling cell. Memory per worker is about
        chunk + halo, plus the tiled predictor's windows (``tile_size``, ``batch_size``).
    scheduler
        ``None`` or ``"threads"``: local threads (``workers`` of them, default 1, since
        torch already uses every core for one chunk); ``"synchronous"``; an address
        such as ``"tcp://host:8786"`` of a running ``dask.distributed`` scheduler, or a
        ``distributed.Client``. The paths must be reachable from every worker.
    resume
        Continue an unfinished output of the same model, input and options, skipping
        the chunks it already wrote; ``False`` starts over.
    tile_size
        Largest window side of the tiled predictor; by default one window covers a
        chunk with its halo (the predictor pads each chunk again by the halo, so a chunk
        of side c costs about (c + 4 halo)^2 pixels of network work).
    on_chunk
        Called with the chunk's block index after it is written (progress, tests).

    Other options are those of :func:`semdenoise.predict.denoise`; with
    ``noise_sigma="auto"`` sigma is estimated per chunk and slice, not per slice.
    Returns the target path.
    """
    import dask.array as da

    model = as_model(model)
    net = model.denoiser
    if net is None:
        raise InputError(f"model of kind {model.kind!r} holds no denoiser")
    source, target = Path(source), Path(target)
    array, space = _open_source(source)
    _check_target(source, target)
    if chunk_size < 8 or chunk_depth < 1:
        raise InputError("--chunk-size must be at least 8 and the chunk depth at least 1")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    config = net.config
    if min(array.shape[-2:]) < config.min_size:
        raise InputError(
            f"{source}: image of {array.shape[-2]}x{array.shape[-1]} pixels is smaller than "
            f"the {config.min_size}x{config.min_size} this network needs"
        )
    multiple = config.size_multiple
    halo = _round_up(config.receptive_radius, multiple)
    halos = (halo, halo)
    block = (_round_up(max(chunk_size, halo), multiple),) * 2
    if array.ndim == 3:
        if config.dims == 3:  # a 3-D network needs context in Z too
            z_multiple = config.z_multiple
            z_halo = _round_up(config.receptive_radius_z, z_multiple)
            block = (_round_up(max(chunk_depth, z_halo), z_multiple), *block)
            halos = (z_halo, *halos)
        else:
            block = (chunk_depth, *block)
            halos = (0, *halos)
    chunks = tuple(_axis_chunks(n, b, h) for n, b, h in zip(array.shape, block, halos, strict=True))
    if tile_size is None:  # one window per chunk: fewest pixels spent on window halos
        tile_size = max(max(chunks[-1]), max(chunks[-2])) + 4 * halo if config.dims == 2 else 1024
    options = {
        "tile_size": tile_size,
        "batch_size": batch_size,
        "tta": tta,
        "noise_sigma": noise_sigma,
        "posterior": posterior,
        "device": None if device is None else str(device),
    }
    fingerprint = {
        "model": model_digest(model),
        "source": str(source.resolve()),
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "chunks": [list(c) for c in chunks],
        # the options that change the values written (device and batch size do not)
        **{k: options[k] for k in ("tile_size", "tta", "noise_sigma", "posterior")},
    }
    partial = partial_path(target)
    remove_stale_siblings(target)  # what a killed earlier run left while moving into place
    done = _prepare_partial(partial, fingerprint, array.shape, block, space, resume=resume)
    progress = partial / PROGRESS_DIR
    total = int(np.prod([len(c) for c in chunks]))
    logger.info(
        "denoising %s %s in %d chunks of %s with a halo of %s%s",
        source,
        tuple(array.shape),
        total,
        block,
        halos,
        f" ({done} already written, resuming)" if done else "",
    )

    plan = _Plan(model, str(source), str(partial), chunks, halos, options, on_chunk)
    image = to_dask(array, chunks)
    written = da.map_overlap(
        _denoise_chunk,
        image,
        depth=dict(enumerate(halos)),
        boundary="none",
        trim=False,
        chunks=tuple((1,) * len(c) for c in chunks),
        dtype=np.uint8,
        meta=np.empty((0,) * image.ndim, dtype=np.uint8),
        plan=plan,
    )
    started = time.perf_counter()
    with _Watcher(progress, total, progress_every):
        _compute(written, scheduler, workers)
    missing = total - _count(progress)
    if missing:  # cannot happen unless the store was changed under us; never finish then
        raise InputError(f"{target}: {missing} chunk(s) were not written; run again to resume")
    _finish(partial, target, fingerprint, space)
    logger.info("wrote %s in %.1f s", target, time.perf_counter() - started)
    return target


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _axis_chunks(size: int, block: int, halo: int) -> tuple[int, ...]:
    """Regular chunks of ``block``; a last one smaller than the halo joins its
    neighbour, since ``map_overlap`` needs every chunk at least as large as the halo."""
    sizes = [block] * (size // block)
    rest = size - block * len(sizes)
    if rest:
        if sizes and rest < halo:
            sizes[-1] += rest
        else:
            sizes.append(rest)
    return tuple(sizes)


def _denoise_chunk(
    block: np.ndarray, *, plan: _Plan, block_id: tuple[int, ...] | None = None
) -> np.ndarray:
    """One task: denoise a chunk with its halo, write its core to the output, mark it."""
    import zarr

    assert block_id is not None  # dask passes it
    marker = Path(plan.output) / PROGRESS_DIR / ".".join(map(str, block_id))
    tiny = np.ones((1,) * block.ndim, dtype=np.uint8)
    if marker.exists():
        return tiny
    core, inner = [], []
    for axis, index in enumerate(block_id):
        sizes, halo = plan.chunks[axis], plan.halos[axis]
        start = sum(sizes[:index])
        before = halo if index > 0 else 0
        core.append(slice(start, start + sizes[index]))
        inner.append(slice(before, before + sizes[index]))
    where = ", ".join(f"{s.start}:{s.stop}" for s in core)
    denoised = denoise(plan.model, block, source=f"{plan.source}[{where}]", **plan.options)
    output = zarr.open_array(store=plan.output, path="0", mode="r+")
    output[tuple(core)] = denoised[tuple(inner)]
    marker.touch()  # only after the data is in the store
    if plan.on_chunk is not None:
        plan.on_chunk(block_id)
    return tiny


def _compute(written: Any, scheduler: str | Any | None, workers: int | None) -> None:
    """Run the graph on local threads or on a ``dask.distributed`` cluster."""
    if scheduler is None or scheduler in ("threads", "synchronous"):
        count = workers or 1
        threads = torch.get_num_threads()
        # torch already spreads one chunk over every core; split them between workers
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // count))
        try:
            written.compute(scheduler=scheduler or "threads", num_workers=count)
        finally:
            torch.set_num_threads(threads)
        return
    from distributed import Client

    if isinstance(scheduler, Client):
        scheduler.compute(written).result()
        return
    if not isinstance(scheduler, str):
        raise InputError(f"scheduler must be 'threads', 'synchronous' or an address: {scheduler!r}")
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as e:
        raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e
    with client:
        client.compute(written).result()


class _Watcher:
    """Log how many chunks are written every few seconds, whatever runs them."""

    def __init__(self, progress: Path, total: int, every: float) -> None:
        self.progress, self.total, self.every = progress, total, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Watcher:
        self.started = time.perf_counter()
        self.first = _count(self.progress)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._report()

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self._report()

    def _report(self) -> None:
        done = _count(self.progress)
        seconds = time.perf_counter() - self.started
        rate = (done - self.first) / seconds * 60 if seconds > 0 else 0.0
        logger.info("%d/%d chunks written (%.1f per minute)", done, self.total, rate)


def _count(progress: Path) -> int:
    try:
        return sum(1 for _ in os.scandir(progress))
    except FileNotFoundError:
        return 0


def model_digest(model: TrainedModel) -> str:
    """A short hash of a model's weights and normalisation: the same model, the same hash."""
    digest = hashlib.sha256(model.kind.encode())
    for role in sorted(model.networks):
        state = model.networks[role].state_dict()
        for name in sorted(state):
            digest.update(name.encode())
            digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps(model.normalization.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _open_source(path: Path) -> tuple[Any, ImageSpace]:
    """The input array (full resolution, singleton T/C axes squeezed away) and where it
    lies in the world (its OME axes, voxel size and origin, or unit voxels)."""
    from semdenoise.io.images import _open_zarr_array
    from semdenoise.io.ome_zarr import open_image

    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    try:
        array = _open_zarr_array(path)
        space = open_image(path)[1]
    except InputError:
        raise
    except Exception as e:
        failure = system_failure(e)
        if failure is not None:
            raise InputError(f"{path}: {failure}") from e
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot read as Zarr: {reason}") from e
    dtype = np.dtype(array.dtype)
    if dtype.kind == "b" or not (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
    ):
        raise InputError(f"{path}: unsupported pixel type {dtype}, expected int or float")
    if array.ndim not in (2, 3):
        raise InputError(
            f"{path}: {array.ndim}-D array of shape {array.shape}, expected 2-D (Y, X) or "
            "3-D (Z, Y, X)"
        )
    return array, space or ImageSpace.default(array.ndim)


def _check_target(source: Path, target: Path) -> None:
    if target.suffix.lower() != ".zarr":
        raise InputError(f"{target}: chunked output must be a .zarr")
    if target.resolve() == source.resolve():
        raise InputError(f"{target}: output would overwrite an input; choose another name")
    if not target.parent.exists():
        raise InputError(f"{target}: folder {target.parent} does not exist")


def _prepare_partial(
    partial: Path,
    fingerprint: dict[str, Any],
    shape: tuple[int, ...],
    block: tuple[int, ...],
    space: ImageSpace,
    *,
    resume: bool,
) -> int:
    """Reuse an unfinished output of the same run, or start a fresh one; returns how
    many chunks it already holds."""
    import zarr

    if partial.exists():
        if resume:
            done = _resumable(partial, fingerprint)
            if done is not None:
                return done
        logger.info("starting over: %s is %s", partial, "not resumed" if not resume else "empty")
        shutil.rmtree(partial)
    group = zarr.open_group(str(partial), mode="w", zarr_format=3)
    create_level0(group, shape, block, "float32", space)
    group.attrs["semdenoise"] = {"fingerprint": fingerprint, "complete": False}
    (partial / PROGRESS_DIR).mkdir()
    return 0


def _resumable(partial: Path, fingerprint: dict[str, Any]) -> int | None:
    """How many chunks an unfinished output of this same run holds; ``None`` when it
    holds none, so starting over loses nothing. Finished chunks are never thrown away
    silently: an output that cannot be read, or that another run (model, input or
    options) began, stops with an error that names it and ``--no-resume``."""
    done = _count(partial / PROGRESS_DIR)
    if done == 0:
        return None
    how = "run the same command again, or pass --no-resume to start over (losing them)"
    try:
        previous = _zarr_attrs(partial).get("semdenoise", {})
    except Exception as e:  # a store we cannot read now may be readable later
        reason = system_failure(e) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise InputError(
            f"{partial}: cannot read the unfinished output ({done} chunk(s) written): "
            f"{reason}; {how}"
        ) from e
    saved = previous.get("fingerprint")
    if saved == fingerprint:
        return done
    changed = (
        sorted(k for k in fingerprint.keys() | saved.keys() if fingerprint.get(k) != saved.get(k))
        if isinstance(saved, dict)
        else ["its record"]
    )
    raise InputError(
        f"{partial}: unfinished output of another run ({done} chunk(s) written; "
        f"{', '.join(changed)} differ); {how}"
    )


def _zarr_attrs(path: Path) -> dict[str, Any]:
    """The attributes of a Zarr group, read-only."""
    import zarr

    return dict(zarr.open_group(str(path), mode="r").attrs)


def _finish(partial: Path, target: Path, fingerprint: dict[str, Any], space: ImageSpace) -> None:
    """Add the pyramid's downsampled levels, mark complete, drop the markers and move the
    output into place (replacing an older output only now, when the new one is whole).

    The levels come from the finished level 0; a run killed while writing them resumes
    with every chunk done and writes them again.
    """
    import zarr

    group = zarr.open_group(str(partial), mode="r+")
    levels = write_pyramid(group, space, name="denoised")
    logger.info("added %d downsampled level(s) for viewers", len(levels) - 1)
    group.attrs["semdenoise"] = {
        "source": fingerprint["source"],
        "model": fingerprint["model"],
        "complete": True,
    }
    shutil.rmtree(partial / PROGRESS_DIR)
    move_into_place(partial, target)
