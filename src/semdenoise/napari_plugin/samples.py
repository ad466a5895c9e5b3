"""Sample data for napari's File > Open Sample: a noisy synthetic image with its labels."""

from __future__ import annotations

from semdenoise.synth.datasets import make_set

SAMPLE_SIZE = 256


def noisy_somata() -> list[tuple]:
    """Two noisy synthetic mesoscopic images of somata (a stack to train on), their
    clean version and their object labels (the demo's generator, seed 0)."""
    images = make_set("somata", 2, size=SAMPLE_SIZE, seed=0)
    return [
        (images.clean, {"name": "somata clean", "visible": False}, "image"),
        (images.noisy, {"name": "somata noisy"}, "image"),
        (images.instances, {"name": "somata labels", "opacity": 0.4}, "labels"),
    ]
