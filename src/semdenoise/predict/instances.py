"""Objects from a segmenter's output: one integer per object, touching objects apart.

A foreground mask merges touching nuclei into one connected component. Two ways to
separate them, both seeded watersheds:

- a segmenter trained on the ``instances`` target (background / interior / boundary)
  says where objects are and where they meet: each connected interior region is a
  seed, and seeds grow over the boundary pixels of the foreground, through the
  landscape of the interior probability, until they meet;
- a one-channel segmenter only gives a mask: seeds are the maxima of the distance to
  the background (after a little smoothing, and deeper than ``h`` pixels, so that one
  elongated object does not break into many), which splits touching round objects at
  their neck.

A 3-D one-channel segmenter gives a volume mask: its objects are the 3-D connected
components (26-neighbour), since the thin, long, branching structures volumes are
segmented for (axons, vessels) would break into pieces at every narrowing under a
distance-transform watershed.

Objects smaller than ``min_size`` pixels (a few noisy pixels classified as foreground)
are dropped, and the rest numbered 1..N again.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

from semdenoise.models.targets import BACKGROUND, INTERIOR

MIN_OBJECT_PIXELS = 8


def _compact(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Objects of at least ``min_size`` pixels as 1..N, in the smallest unsigned type
    that holds N."""
    sizes = np.bincount(labels.ravel())
    small = np.flatnonzero(sizes < min_size)
    labels = relabel_sequential(np.where(np.isin(labels, small[small > 0]), 0, labels))[0]
    dtype = np.uint16 if labels.max(initial=0) < np.iinfo(np.uint16).max else np.uint32
    return labels.astype(dtype)


def instances_from_classes(
    probabilities: np.ndarray, *, threshold: float = 0.5, min_size: int = MIN_OBJECT_PIXELS
) -> np.ndarray:
    """Objects of one (3, Y, X) background / interior / boundary probability map."""
    foreground = 1.0 - probabilities[BACKGROUND] >= threshold
    interior = probabilities[INTERIOR]
    seeds, _ = ndimage.label(foreground & (interior >= probabilities.max(axis=0)))
    return _compact(watershed(-interior, seeds, mask=foreground), min_size)


def instances_from_mask(
    mask: np.ndarray,
    *,
    h: float = 1.0,
    smoothing: float = 1.0,
    min_size: int = MIN_OBJECT_PIXELS,
) -> np.ndarray:
    """Objects of one 2-D 0/1 mask: distance-transform watershed (see module doc)."""
    foreground = mask.astype(bool)
    distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(foreground), smoothing)
    seeds, _ = ndimage.label(h_maxima(distance, h) & foreground)
    return _compact(watershed(-distance, seeds, mask=foreground), min_size)


def connected_instances(mask: np.ndarray, *, min_size: int = MIN_OBJECT_PIXELS) -> np.ndarray:
    """Objects of a 0/1 mask as its connected components, pixels or voxels that touch by
    a face, edge or corner belonging to one object (see module doc)."""
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    labels, _ = ndimage.label(mask.astype(bool), structure=structure)
    return _compact(labels, min_size)
