"""semdenoise: self-supervised microscopy denoising that gets better from semantic labels.

The notebook API::

    import semdenoise as sd
    model = sd.train_n2v(noisy_stack, train=sd.TrainConfig(max_minutes=10))
    denoised = sd.denoise(model, noisy_image)
    sd.save_model(model, "n2v.pt"); model = sd.load_model("n2v.pt")
"""

from semdenoise.config import MaskingConfig, TrainConfig, UNetConfig
from semdenoise.errors import InputError, ModelFileError, SemdenoiseError, TrainingError
from semdenoise.io import load_model, read_image, save_model, write_image
from semdenoise.models.trained import TrainedModel
from semdenoise.predict import denoise
from semdenoise.training import train_n2v

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "MaskingConfig",
    "ModelFileError",
    "SemdenoiseError",
    "TrainConfig",
    "TrainedModel",
    "TrainingError",
    "UNetConfig",
    "denoise",
    "load_model",
    "read_image",
    "save_model",
    "train_n2v",
    "write_image",
]
