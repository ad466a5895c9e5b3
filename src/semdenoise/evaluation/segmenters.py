"""Downstream segmenters that score every method's output the same way.

A *fixed* segmenter — a model trained separately, or Otsu's threshold when there is
none — is applied to the clean, noisy and every denoised image alike, so differences
in IoU and F1 come from the images, not the segmenter (paper §3.4).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage.filters import threshold_otsu

from semdenoise.models.trained import TrainedModel

Segmenter = Callable[[np.ndarray], np.ndarray]


def otsu_segmenter(image: np.ndarray) -> np.ndarray:
    """Foreground above Otsu's threshold of the image's own histogram (uint8 0/1)."""
    if np.ptp(image) == 0:
        return np.zeros(image.shape, np.uint8)
    return (image > threshold_otsu(image)).astype(np.uint8)


def model_segmenter(model: TrainedModel) -> Segmenter:
    """A segmenter model (kind ``seg``) applied on its own, never through a denoiser."""
    from semdenoise.predict import segment

    if model.segmenter is None:
        raise ValueError(f"the {model.kind} model holds no segmenter")
    alone = TrainedModel(
        kind="seg", networks={"segmenter": model.segmenter}, normalization=model.normalization
    )
    return lambda image: segment(alone, image, source="fixed segmenter")
