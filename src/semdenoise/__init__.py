"""semdenoise: self-supervised microscopy denoising that gets better from semantic labels.

The notebook API::

    import semdenoise as sd
    model = sd.train_n2v(noisy_stack, train=sd.TrainConfig(max_minutes=10))
    denoised = sd.denoise(model, noisy_image)
    sd.save_model(model, "n2v.pt"); model = sd.load_model("n2v.pt")
    seg = sd.train_seg(noisy_stack, masks)                         # a segmenter
    joint = sd.train_joint(noisy_stack, labels=masks)              # Eq. 3
    joint = sd.train_joint(plaques, style_segmenter=somata_seg)    # Eq. 4
    mask = sd.segment(joint, noisy_image)
    sd.denoise_zarr(model, "brain.zarr", "denoised.zarr")        # larger than memory
    sd.export_model(model, "n2v.zip", sample="image.tif")        # BioImage Model Zoo
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Where each public name lives. They are imported on first use, not here, so that a
# command that only predicts (``semdenoise denoise``) never pays for importing the
# training stack (Lightning: about 4 s of a CLI call's start on a 2-core CPU).
_EXPORTS = {
    "JointConfig": "semdenoise.config",
    "MaskingConfig": "semdenoise.config",
    "NoiseConfig": "semdenoise.config",
    "TrainConfig": "semdenoise.config",
    "UNetConfig": "semdenoise.config",
    "InputError": "semdenoise.errors",
    "ModelFileError": "semdenoise.errors",
    "SemdenoiseError": "semdenoise.errors",
    "TrainingError": "semdenoise.errors",
    "TrainingInterrupted": "semdenoise.errors",
    "export_model": "semdenoise.export",
    "load_model": "semdenoise.io",
    "read_image": "semdenoise.io",
    "save_model": "semdenoise.io",
    "write_image": "semdenoise.io",
    "TrainedModel": "semdenoise.models.trained",
    "denoise": "semdenoise.predict",
    "denoise_zarr": "semdenoise.predict",
    "segment": "semdenoise.predict",
    "train_joint": "semdenoise.training",
    "train_n2v": "semdenoise.training",
    "train_seg": "semdenoise.training",
}

if TYPE_CHECKING:
    from semdenoise.config import (
        JointConfig,
        MaskingConfig,
        NoiseConfig,
        TrainConfig,
        UNetConfig,
    )
    from semdenoise.errors import (
        InputError,
        ModelFileError,
        SemdenoiseError,
        TrainingError,
        TrainingInterrupted,
    )
    from semdenoise.export import export_model
    from semdenoise.io import load_model, read_image, save_model, write_image
    from semdenoise.models.trained import TrainedModel
    from semdenoise.predict import denoise, denoise_zarr, segment
    from semdenoise.training import train_joint, train_n2v, train_seg


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'semdenoise' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__version__ = "0.1.0"

__all__ = [
    "InputError",
    "JointConfig",
    "MaskingConfig",
    "ModelFileError",
    "NoiseConfig",
    "SemdenoiseError",
    "TrainConfig",
    "TrainedModel",
    "TrainingError",
    "TrainingInterrupted",
    "UNetConfig",
    "denoise",
    "denoise_zarr",
    "export_model",
    "load_model",
    "read_image",
    "save_model",
    "segment",
    "train_joint",
    "train_n2v",
    "train_seg",
    "write_image",
]
