"""What a segmenter learns from a label image, and where it learns nothing.

A label image is turned into two planes that ride along with the image in training:
the *target* and a *weight* (1 where the segmentation loss counts, 0 where it does
not). The weight is how partial labels work: an image without labels has weight 0
everywhere and trains the denoiser only; within an image, pixels equal to
``ignore_label`` (sparse volume labels, unlabelled regions) have weight 0. Values in
``background_labels`` (default 0) are background, so label files that spell
"background" as another value (TRAILMAP: 1, with 0 unlabelled) train as they are.

Targets:

- ``"foreground"``: 1 on any label that is not background, 0 elsewhere (the paper's
  masks).
- ``"instances"``: three classes, background 0, object interior 1, object boundary 2
  (the pixels of an object that touch another object or the background), as in
  DenoiSeg. A segmenter trained on them separates touching objects: interiors become
  the seeds of :func:`semdenoise.predict.instances.instances_from_classes`. Objects
  are those of :func:`objects_of` (also what evaluation scores): the distinct non-zero
  values of a label image, or a mask's connected components (touching objects in a
  mask cannot be told apart by anyone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import numpy as np
import torch
from skimage.measure import label
from skimage.segmentation import find_boundaries, relabel_sequential

from semdenoise.config import SegTarget
from semdenoise.errors import InputError

SEG_TARGETS: tuple[SegTarget, ...] = get_args(SegTarget)
CHANNELS: dict[SegTarget, int] = {"foreground": 1, "instances": 3}  # segmenter outputs
BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def objects_of(segmentation: np.ndarray) -> np.ndarray:
    """The objects of a segmentation as consecutive labels 1..N (0 is background).

    A mask (boolean, or one non-zero value such as 0/1 or 0/255) is split into its
    connected components, so touching objects merge; an integer image with several
    non-zero values is an instance image and each value is one object, as it is, even
    where objects touch or one is in pieces.

    >>> objects_of(np.array([[1, 1, 0, 1]])).tolist()
    [[1, 1, 0, 2]]
    >>> objects_of(np.array([[3, 7, 0, 3]])).tolist()
    [[1, 2, 0, 1]]
    """
    segmentation = np.asarray(segmentation)
    values = np.unique(segmentation)
    if segmentation.dtype == bool or np.count_nonzero(values) <= 1:
        return label(segmentation != 0)
    if values[0] < 0 or not np.array_equal(values, np.round(values)):
        raise ValueError(
            "segmentation: expected a 0/1 mask or non-negative integer instance labels, "
            f"found {segmentation.dtype} values from {values[0]} to {values[-1]}"
        )
    relabelled, _, _ = relabel_sequential(segmentation.astype(np.int64))
    return relabelled


def instance_classes(labels: np.ndarray) -> np.ndarray:
    """Background 0, interior 1, boundary 2 of a 2-D or 3-D label image (see module doc;
    in 3-D, objects and boundaries are taken with full 26-neighbour connectivity)."""
    ids = objects_of(labels)
    classes = (ids > 0).astype(np.float32) * INTERIOR
    classes[find_boundaries(ids, mode="inner") & (ids > 0)] = BOUNDARY
    return classes


def encode_labels(
    labels: np.ndarray | None,
    shape: tuple[int, ...],
    *,
    target: SegTarget = "foreground",
    ignore_label: int | None = None,
    background_labels: Sequence[int] = (0,),
    source: str = "labels",
) -> tuple[np.ndarray, np.ndarray]:
    """(target, weight) float32 planes of ``shape`` for one 2-D label image or 3-D label
    volume, or for none (unlabelled: weight 0 everywhere). Values in
    ``background_labels`` are background, every other value but ``ignore_label`` is
    foreground."""
    if labels is None:
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    check_label_values(ignore_label, background_labels)
    ignored = np.zeros(shape, bool) if ignore_label is None else labels == ignore_label
    background = np.isin(labels, list(background_labels))
    kept = np.where(ignored | background, 0, labels)
    if target == "instances":
        if kept.min() < 0:
            raise InputError(
                f"{source}: negative label {int(kept.min())}; instance labels are 0 "
                "(background) and 1..N (objects); mark unlabelled pixels with --ignore-label"
            )
        planes = instance_classes(kept)
    else:
        planes = (kept != 0).astype(np.float32)
    return planes, (~ignored).astype(np.float32)


def check_label_values(ignore_label: int | None, background_labels: Sequence[int]) -> None:
    """Refuse a value that is both unlabelled and background, or no background value."""
    if not len(background_labels):
        raise InputError("--background-label: give at least one background value")
    if ignore_label is not None and ignore_label in background_labels:
        raise InputError(
            f"--ignore-label {ignore_label} is also a --background-label; a value is either "
            "unlabelled or background"
        )


def check_target(target: str, loss: str) -> None:
    """A known target, and a loss it can train with (instances: cross-entropy only)."""
    if target not in SEG_TARGETS:
        raise InputError(f"target {target!r}: expected {' or '.join(SEG_TARGETS)}")
    if target == "instances" and loss != "bce":
        raise InputError(
            f"loss {loss!r}: the instances target trains with cross-entropy (loss bce)"
        )


def predicted_foreground(logits: torch.Tensor) -> torch.Tensor:
    """Foreground of a segmenter's logits (B, C, ...): logit > 0 for one channel, any
    class but background for several."""
    if logits.shape[1] == 1:
        return logits > 0
    return logits.argmax(dim=1, keepdim=True) != BACKGROUND
