"""Typed errors: everything a user can cause raises one of these, with a one-line message."""

from __future__ import annotations


class SemdenoiseError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits with code 2."""


class InputError(SemdenoiseError, ValueError):
    """An image, label or parameter is unusable (shape, values, format, path)."""


class ModelFileError(SemdenoiseError, ValueError):
    """A model file is missing, truncated, foreign, unsafe or incompatible."""


class TrainingError(SemdenoiseError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C or SIGTERM stopped training; the checkpoint it saved lets ``--resume`` go on."""
