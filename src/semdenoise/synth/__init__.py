"""Synthetic mesoscopic images with their clean version and masks."""

from semdenoise.synth.mesoscopic import SyntheticImage, add_poisson_gaussian, somata_image

__all__ = ["SyntheticImage", "add_poisson_gaussian", "somata_image"]
