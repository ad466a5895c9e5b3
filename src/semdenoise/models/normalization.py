"""Intensity normalisation with statistics fixed at training time.

Prediction uses the statistics stored in the model, never per-image ones, so a crop
and the whole image give the same values where their tiles agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from semdenoise.errors import InputError


@dataclass(frozen=True)
class Normalization:
    """Mean and standard deviation of the training pixels."""

    mean: float
    std: float

    @classmethod
    def fit(cls, images: Sequence[np.ndarray]) -> Normalization:
        """Statistics over every pixel of every image (float64 accumulation)."""
        count = sum(image.size for image in images)
        mean = sum(float(image.sum(dtype=np.float64)) for image in images) / count
        var = sum(float(np.square(image - mean, dtype=np.float64).sum()) for image in images)
        std = (var / count) ** 0.5
        if not std > 0:
            raise InputError("training images: every pixel has the same value, nothing to learn")
        return cls(mean=mean, std=std)

    def normalize(self, image: np.ndarray) -> np.ndarray:
        return ((image - self.mean) / self.std).astype(np.float32, copy=False)

    def denormalize(self, image: np.ndarray) -> np.ndarray:
        return (image * self.std + self.mean).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
