"""Outputs that appear whole or not at all, and the leftovers of runs that were killed.

Every output (image, model file, checkpoint, Zarr store) is written under a hidden
temporary sibling and moved into place with ``os.replace``; an output that replaces
an older one moves the older one aside first (``.old``), so the final name always
holds a complete file. A SIGKILL cannot run clean-up code, so those hidden siblings
carry the writer's process id: the next write to the same output removes the ones
whose writer is no longer running (and those of earlier versions, which had no id),
and never the ones of a writer still at work.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

# ".NAME.<pid>-<8 hex>.tmp<suffix>" / ".old", or ".NAME.<8 hex>.tmp<suffix>" / ".old"
# as written before the writer's id was part of the name.
_LEFTOVER = r"\.{name}\.(?:(?P<pid>\d+)-)?[0-9a-f]{{8}}\.(?:tmp(?:\.[^.]+)?|old)"


def temporary_sibling(path: Path, kind: str = "tmp") -> Path:
    """A hidden, unique name beside ``path`` for a ``tmp`` (being written) or ``old``
    (being replaced) copy; a ``tmp`` keeps the suffix, so writers that choose a format
    by suffix still do."""
    suffix = path.suffix if kind == "tmp" else ""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{kind}{suffix}")


def stale_siblings(path: Path) -> list[Path]:
    """Hidden temporary copies of ``path`` left by writers that no longer run."""
    pattern = re.compile(_LEFTOVER.format(name=re.escape(path.name)))
    try:
        entries = list(path.parent.iterdir())
    except OSError:  # no folder yet, or not listable: nothing of ours to clean
        return []
    stale = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and not _running(match.group("pid")):
            stale.append(entry)
    return sorted(stale)


def _running(pid: str | None) -> bool:
    if pid is None:
        return False  # an earlier version's name: its writer is long gone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale_siblings(path: Path) -> None:
    """Delete what killed writers of ``path`` left behind (logged, never fatal)."""
    for leftover in stale_siblings(path):
        try:
            _remove(leftover)
        except OSError as e:
            logger.warning("could not remove the leftover %s: %s", leftover, e)
        else:
            logger.info("removed %s, left by a run that was killed", leftover)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def move_into_place(new: Path, path: Path) -> None:
    """``os.replace`` a finished file or folder onto ``path``; an existing folder is
    moved aside first (a rename cannot replace a non-empty folder), then deleted."""
    if new.is_dir() and path.exists():
        old = temporary_sibling(path, "old")
        os.replace(path, old)
        os.replace(new, path)
        _remove(old)
    else:
        os.replace(new, path)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it into place only on success.

    Leftovers of killed earlier writes to ``path`` are removed first.
    """
    remove_stale_siblings(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        move_into_place(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
