"""Reading and writing images and model files, and the checks where input enters."""

from semdenoise.io.images import (
    SUPPORTED_INPUTS,
    SUPPORTED_OUTPUTS,
    read_image,
    read_training_images,
    write_image,
)
from semdenoise.io.model_file import load_model, save_model

__all__ = [
    "SUPPORTED_INPUTS",
    "SUPPORTED_OUTPUTS",
    "load_model",
    "read_image",
    "read_training_images",
    "save_model",
    "write_image",
]
