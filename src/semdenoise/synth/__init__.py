"""Synthetic mesoscopic images with their clean version, masks and instance labels."""

from semdenoise.synth.datasets import DEFAULT_NOISE, NoiseSettings, SyntheticSet, make_set
from semdenoise.synth.mesoscopic import (
    SyntheticImage,
    add_poisson_gaussian,
    plaques_image,
    somata_image,
)

__all__ = [
    "DEFAULT_NOISE",
    "NoiseSettings",
    "SyntheticImage",
    "SyntheticSet",
    "add_poisson_gaussian",
    "make_set",
    "plaques_image",
    "somata_image",
]
