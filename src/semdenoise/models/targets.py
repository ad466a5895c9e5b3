"""What a segmenter learns from a label image, and where it learns nothing.

A label image is turned into two planes that ride along with the image in training:
the *target* and a *weight* (1 where the segmentation loss counts, 0 where it does
not). The weight is how partial labels work: an image without labels has weight 0
everywhere and trains the denoiser only; within an image, pixels equal to
``ignore_label`` (sparse volume labels, unlabelled regions) have weight 0.

Targets:

- ``"foreground"``: 1 on any non-zero label, 0 elsewhere (the paper's masks).
- ``"instances"``: three classes, background 0, object interior 1, object boundary 2
  (the pixels of an object that touch another object or the background), as in
  DenoiSeg. A segmenter trained on them separates touching objects: interiors become
  the seeds of :func:`semdenoise.predict.instances.instances_from_classes`. Objects
  are those of :func:`semdenoise.metrics.objects_of`: the distinct non-zero values of
  a label image, or a mask's connected components (touching objects in a mask cannot
  be told apart by anyone).
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import torch
from skimage.segmentation import find_boundaries

from semdenoise.config import SegTarget
from semdenoise.errors import InputError
from semdenoise.metrics import objects_of

SEG_TARGETS: tuple[SegTarget, ...] = get_args(SegTarget)
CHANNELS: dict[SegTarget, int] = {"foreground": 1, "instances": 3}  # segmenter outputs
BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def instance_classes(labels: np.ndarray) -> np.ndarray:
    """Background 0, interior 1, boundary 2 of a 2-D label image (see module doc)."""
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
    source: str = "labels",
) -> tuple[np.ndarray, np.ndarray]:
    """(target, weight) float32 planes of ``shape`` for one 2-D label image, or for
    none (an unlabelled image: weight 0 everywhere)."""
    if labels is None:
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    ignored = np.zeros(shape, bool) if ignore_label is None else labels == ignore_label
    kept = np.where(ignored, 0, labels)
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
