"""Typed errors: everything a user can cause raises one of these, with a one-line message."""

from __future__ import annotations

import errno
import os


class SemdenoiseError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits with code 2."""


class InputError(SemdenoiseError, ValueError):
    """An image, label or parameter is unusable (shape, values, format, path)."""


class ModelFileError(SemdenoiseError, ValueError):
    """A model file is missing, truncated, foreign, unsafe or incompatible."""


class DependencyError(SemdenoiseError, ImportError):
    """An optional package that the requested work needs is not installed."""


class TrainingError(SemdenoiseError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C or SIGTERM stopped training; the checkpoint it saved lets ``--resume`` go on."""


# Failures of the disk or the network file system, not of the bytes (a truncated file
# can raise EINVAL from a seek, so not every OSError is the system's fault).
_DEVICE_ERRORS = {errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.ENOTCONN, errno.EHOSTDOWN}


def system_failure(error: BaseException) -> str | None:
    """What went wrong when reading failed for a reason outside the file's bytes
    (permissions, memory, the disk), or ``None`` when the content is at fault.

    Readers catch broad exceptions because truncated or foreign bytes fail in many ways;
    this keeps them from calling a permission or memory problem "truncated or foreign".
    Follows the chain of causes, since libraries re-raise I/O errors as their own.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, MemoryError):
            return "not enough memory to read it"
        if isinstance(error, PermissionError):
            return "permission denied"
        if isinstance(error, IsADirectoryError):
            return "is a folder, expected a file"
        if isinstance(error, OSError) and error.errno in _DEVICE_ERRORS:
            return f"cannot read it: {os.strerror(error.errno)}"
        error = error.__cause__ or error.__context__
    return None
