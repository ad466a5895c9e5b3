"""Networks: the U-Net used as residual denoiser and as logit segmenter."""

from semdenoise.models.unet import UNet

__all__ = ["UNet"]
