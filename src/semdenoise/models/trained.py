"""A trained model as the library hands it around: networks plus what they need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from semdenoise.models.normalization import Normalization
from semdenoise.models.unet import UNet


@dataclass
class TrainedModel:
    """Networks by role ("denoiser", "segmenter"), normalisation and provenance.

    ``kind`` says which training produced it ("n2v", "seg", "joint"); ``training`` holds
    the configs and the run's summary (steps, time, losses) for the record.
    """

    kind: str
    networks: dict[str, UNet]
    normalization: Normalization
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def denoiser(self) -> UNet | None:
        return self.networks.get("denoiser")

    @property
    def segmenter(self) -> UNet | None:
        return self.networks.get("segmenter")

    @property
    def segmenter_sees_noisy(self) -> bool:
        """A joint model whose segmenter takes the noisy and the denoised image as
        channels (``JointConfig.segment_input="both"``), not the denoised image alone."""
        return (
            self.kind == "joint"
            and self.training.get("joint", {}).get("segment_input", "denoised") == "both"
        )
