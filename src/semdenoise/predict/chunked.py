"""Denoise a Zarr array larger than memory, chunk by chunk, on Dask.

Every chunk is read with a halo of the network's receptive radius, denoised by the
same in-memory path as :func:`semdenoise.predict.denoise` (same tiling, same stored
normalisation; the halo passed as context, so it is not padded a second time) and
written straight into its region of the output Zarr, so memory follows the chunk and
the tile, never the image. Where the chunks and halos lie and
what identifies a run is planned in :mod:`semdenoise.predict.chunk_plan`; the tasks run
on Dask in :mod:`semdenoise.predict.chunk_run`. This module checks the input and keeps
the output: when every chunk is written, the downsampled levels of an OME-NGFF pyramid
are computed from it, level by level (:func:`semdenoise.io.ome_zarr.write_pyramid`), so
viewers open the output at any zoom.

The output is built under a hidden sibling name (``.OUT.zarr.partial``) and moved into
place only when every chunk is written, so a reader never sees half an output. Each
written chunk leaves a marker file; a run that stops (killed, Ctrl-C, an error) resumes
where it stopped when started again with the same model, input and options.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semdenoise.errors import InputError, system_failure
from semdenoise.io.atomic import move_into_place, remove_stale_siblings
from semdenoise.io.ome_zarr import ImageSpace, create_level0, write_pyramid
from semdenoise.models.trained import TrainedModel
from semdenoise.predict.chunk_plan import (
    DEFAULT_CHUNK,
    PROGRESS_DIR,
    ChunkPlan,
    chunk_layout,
    count_written,
    one_window_tile_size,
    run_fingerprint,
)
from semdenoise.predict.chunk_run import run_chunks
from semdenoise.predict.denoise import as_model

logger = logging.getLogger(__name__)

__all__ = ["PROGRESS_DIR", "denoise_zarr", "partial_path"]


def partial_path(target: str | os.PathLike) -> Path:
    """Where an unfinished output lives until it is complete."""
    target = Path(target)
    return target.with_name(f".{target.name}.partial")


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
        ``None`` or ``"threads"``: local threads (``workers`` of them, each working on
        its own chunk with its share of torch's threads; default 2 on a machine with two
        cores or more: faster than one chunk over every core, holding two chunks in
        memory, docs/volumes.md); ``"synchronous"``;
        an address
        such as ``"tcp://host:8786"`` of a running ``dask.distributed`` scheduler, or a
        ``distributed.Client``. The paths must be reachable from every worker.
    resume
        Continue an unfinished output of the same model, input and options, skipping
        the chunks it already wrote; ``False`` starts over.
    tile_size
        Largest window side of the tiled predictor; by default one window covers a
        chunk with its halo. The halo is context, never padded again (only the image's
        own borders are), so a chunk of side c costs (c + 2 halo)^2 pixels of network
        work.
    on_chunk
        Called with the chunk's block index after it is written (progress, tests).

    Other options are those of :func:`semdenoise.predict.denoise`; with
    ``noise_sigma="auto"`` sigma is estimated per chunk and slice, not per slice.
    Returns the target path.
    """
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
    block, halos, chunks = chunk_layout(
        array.shape, config, chunk_size=chunk_size, chunk_depth=chunk_depth
    )
    if tile_size is None:
        tile_size = one_window_tile_size(chunks, halos, config)
    options = {
        "tile_size": tile_size,
        "batch_size": batch_size,
        "tta": tta,
        "noise_sigma": noise_sigma,
        "posterior": posterior,
        "device": None if device is None else str(device),
    }
    fingerprint = run_fingerprint(model, source, array.shape, array.dtype, chunks, options)
    partial = partial_path(target)
    remove_stale_siblings(target)  # what a killed earlier run left while moving into place
    done = _prepare_partial(partial, fingerprint, array.shape, block, space, resume=resume)
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

    plan = ChunkPlan(model, str(source), str(partial), chunks, halos, options, on_chunk)
    started = time.perf_counter()
    run_chunks(plan, array, scheduler=scheduler, workers=workers, progress_every=progress_every)
    missing = total - count_written(partial / PROGRESS_DIR)
    if missing:  # cannot happen unless the store was changed under us; never finish then
        raise InputError(f"{target}: {missing} chunk(s) were not written; run again to resume")
    _finish(partial, target, fingerprint, space)
    logger.info("wrote %s in %.1f s", target, time.perf_counter() - started)
    return target


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
    done = count_written(partial / PROGRESS_DIR)
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
