"""Where the chunks of a Zarr prediction lie, and what identifies a run: pure planning.

Chunk origins and halos are multiples of the network's pooling cell, so a chunk
predicted with its halo equals the in-memory prediction of the same region up to float
rounding. A run is identified by its fingerprint (model weights, input, chunks and the
options that change the values written), so an unfinished output is resumed only by the
same run; each written chunk leaves a marker file, and the markers count the progress.
Nothing here schedules or computes (:mod:`semdenoise.predict.chunk_run` does).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semdenoise.config import DEFAULT_TILE_SIZE, UNetConfig
from semdenoise.models.trained import TrainedModel

PROGRESS_DIR = ".semdenoise-progress"
DEFAULT_CHUNK = 1024


@dataclass(frozen=True)
class ChunkPlan:
    """What every chunk task needs; small and picklable (for distributed workers)."""

    model: TrainedModel
    source: str
    output: str
    chunks: tuple[tuple[int, ...], ...]
    halos: tuple[int, ...]
    options: dict[str, Any]
    on_chunk: Callable[[tuple[int, ...]], None] | None


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def chunk_layout(
    shape: tuple[int, ...], config: UNetConfig, *, chunk_size: int, chunk_depth: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """The regular chunk (``block``), the halo per axis and every axis's chunk sizes of a
    (Y, X) image or (Z, Y, X) stack. A 2-D network works on (chunk_depth, Y, X) chunks of a
    stack with a halo in Y/X only; a 3-D one needs context in Z too."""
    multiple = config.size_multiple
    halo = _round_up(config.receptive_radius, multiple)
    halos: tuple[int, ...] = (halo, halo)
    block: tuple[int, ...] = (_round_up(max(chunk_size, halo), multiple),) * 2
    if len(shape) == 3:
        if config.dims == 3:
            z_multiple = config.z_multiple
            z_halo = _round_up(config.receptive_radius_z, z_multiple)
            block = (_round_up(max(chunk_depth, z_halo), z_multiple), *block)
            halos = (z_halo, *halos)
        else:
            block = (chunk_depth, *block)
            halos = (0, *halos)
    chunks = tuple(axis_chunks(n, b, h) for n, b, h in zip(shape, block, halos, strict=True))
    return block, halos, chunks


def axis_chunks(size: int, block: int, halo: int) -> tuple[int, ...]:
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


def one_window_tile_size(
    chunks: tuple[tuple[int, ...], ...], halos: tuple[int, ...], config: UNetConfig
) -> int:
    """The tile size that predicts a 2-D network's chunk with its halo in one window:
    fewest pixels spent on window halos (the halo is context, padded only at the image's
    borders). A 3-D network keeps the in-memory default side, since its windows follow a
    voxel budget."""
    if config.dims != 2:
        return DEFAULT_TILE_SIZE
    return max(max(chunks[-1]), max(chunks[-2])) + 2 * halos[-1]


def chunk_regions(plan: ChunkPlan, block_id: tuple[int, ...]) -> tuple[tuple[slice, ...], ...]:
    """Where chunk ``block_id`` lies in the image (its core) and where that core lies in
    the chunk read with its halo (no halo before the first chunk of an axis)."""
    core, inner = [], []
    for axis, index in enumerate(block_id):
        sizes, halo = plan.chunks[axis], plan.halos[axis]
        start = sum(sizes[:index])
        before = halo if index > 0 else 0
        core.append(slice(start, start + sizes[index]))
        inner.append(slice(before, before + sizes[index]))
    return tuple(core), tuple(inner)


def run_fingerprint(
    model: TrainedModel,
    source: Path,
    shape: tuple[int, ...],
    dtype: Any,
    chunks: tuple[tuple[int, ...], ...],
    options: dict[str, Any],
) -> dict[str, Any]:
    """What must agree for an unfinished output to be resumed: JSON, stored with it."""
    return {
        "model": model_digest(model),
        "source": str(source.resolve()),
        "shape": list(shape),
        "dtype": str(dtype),
        "chunks": [list(c) for c in chunks],
        # the options that change the values written (device and batch size do not)
        **{k: options[k] for k in ("tile_size", "tta", "noise_sigma", "posterior")},
    }


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


def marker_path(output: str | os.PathLike, block_id: tuple[int, ...]) -> Path:
    """The file whose existence says chunk ``block_id`` is in the output store."""
    return Path(output) / PROGRESS_DIR / ".".join(map(str, block_id))


def count_written(progress: Path) -> int:
    """How many chunks the markers in ``progress`` say are written."""
    try:
        return sum(1 for _ in os.scandir(progress))
    except FileNotFoundError:
        return 0
