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
"""

from semdenoise.config import JointConfig, MaskingConfig, TrainConfig, UNetConfig
from semdenoise.errors import (
    InputError,
    ModelFileError,
    SemdenoiseError,
    TrainingError,
    TrainingInterrupted,
)
from semdenoise.io import load_model, read_image, save_model, write_image
from semdenoise.models.trained import TrainedModel
from semdenoise.predict import denoise, denoise_zarr, segment
from semdenoise.training import train_joint, train_n2v, train_seg

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "JointConfig",
    "MaskingConfig",
    "ModelFileError",
    "SemdenoiseError",
    "TrainConfig",
    "TrainedModel",
    "TrainingError",
    "TrainingInterrupted",
    "UNetConfig",
    "denoise",
    "denoise_zarr",
    "load_model",
    "read_image",
    "save_model",
    "segment",
    "train_joint",
    "train_n2v",
    "train_seg",
    "write_image",
]
