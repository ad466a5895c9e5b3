"""Intensity normalisation with statistics fixed at training time.

Prediction uses the statistics stored in the model, never per-image ones, so a crop
and the whole image give the same values where their tiles agree. Images with several
channels get statistics per channel (their channel axis first): channels may differ in
brightness by orders of magnitude.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from semdenoise.errors import InputError


@dataclass(frozen=True)
class Normalization:
    """Mean and standard deviation of the training pixels: numbers for one-channel
    images, one per channel (tuples) for images with a leading channel axis."""

    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]

    def __post_init__(self) -> None:  # a model file stores per-channel values as lists
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, list | tuple):
                object.__setattr__(self, name, tuple(float(v) for v in value))

    @classmethod
    def fit(cls, images: Sequence[np.ndarray], *, channels: int = 1) -> Normalization:
        """Statistics over every pixel of every image (float64 accumulation); with
        ``channels`` > 1, per channel over images (C, ...)."""
        if channels > 1:
            fitted = []
            for c in range(channels):
                try:
                    fitted.append(cls.fit([image[c] for image in images]))
                except InputError:
                    raise InputError(
                        f"training images: channel {c} has the same value in every pixel, "
                        "nothing to learn"
                    ) from None
            return cls(mean=tuple(f.mean for f in fitted), std=tuple(f.std for f in fitted))
        count = sum(image.size for image in images)
        mean = sum(float(image.sum(dtype=np.float64)) for image in images) / count
        var = sum(float(np.square(image - mean, dtype=np.float64).sum()) for image in images)
        std = (var / count) ** 0.5
        if not std > 0:
            raise InputError("training images: every pixel has the same value, nothing to learn")
        return cls(mean=mean, std=std)

    @property
    def channels(self) -> int:
        return len(self.mean) if isinstance(self.mean, tuple) else 1

    def _shaped(self, image: np.ndarray) -> tuple[float | np.ndarray, float | np.ndarray]:
        if self.channels == 1:
            return self.mean, self.std
        if image.shape[0] != self.channels:
            raise InputError(
                f"image with {image.shape[0]} channel(s) for a model of {self.channels}"
            )
        view = (-1,) + (1,) * (image.ndim - 1)
        return np.reshape(self.mean, view), np.reshape(self.std, view)

    def normalize(self, image: np.ndarray) -> np.ndarray:
        mean, std = self._shaped(image)
        return ((image - mean) / std).astype(np.float32, copy=False)

    def denormalize(self, image: np.ndarray) -> np.ndarray:
        mean, std = self._shaped(image)
        return (image * std + mean).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, float | list[float]]:
        values = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def describe(self) -> str:
        """The statistics, for messages."""
        if self.channels == 1:
            return f"mean {self.mean:.4g}, std {self.std:.4g}"
        means = ", ".join(f"{m:.4g}" for m in self.mean)
        stds = ", ".join(f"{s:.4g}" for s in self.std)
        return f"means {means}; stds {stds}"
