"""Blind-spot prediction at inference: every pixel predicted without seeing its value.

A Noise2Void network is blind only where training masked it; shown the whole image at
inference it partly copies each pixel's own noisy value (on a smooth test image its
output sat closer to the noisy input than the clean image did). That is harmless for
the bare prediction but double-counts the pixel when the posterior mean adds the
observed value back (models/noise_model.py). So a model with a noise model predicts in
``stride``² passes: pass (a, b) masks every pixel with y % stride == a and
x % stride == b, replacing it by the median of its window without its centre (as N2V2
masks; deterministic, unlike a random neighbour), and keeps the network's outputs at
exactly those pixels. Masked pixels of one pass are ``stride`` apart, so none lies in
another's replacement window for ``stride`` > the masking radius.

The masking itself is models/posterior.py's, in torch: the exported package runs the
same code around its network. Here each pass is a tiled prediction (predict/tiling.py).
"""

from __future__ import annotations

import numpy as np
import torch

from semdenoise.models import posterior
from semdenoise.models.posterior import BLIND_STRIDE
from semdenoise.models.unet import UNet
from semdenoise.predict.inference import InferenceNet
from semdenoise.predict.tiling import predict_tiled, prepared

__all__ = ["BLIND_STRIDE", "blind_prediction", "window_medians"]


def _batch(image: np.ndarray) -> torch.Tensor:
    """A (Y, X) or (C, Y, X) array as a (1, C, Y, X) float32 tensor (a copy: the caller's
    array is never written to)."""
    image = np.array(image, dtype=np.float32)
    return torch.from_numpy(image.reshape(1, -1, *image.shape[-2:]))


def window_medians(image: np.ndarray, radius: int) -> np.ndarray:
    """Each pixel's median over its (2r+1)² window without the centre (image edges
    mirrored), in the last two axes (per channel of a (C, Y, X) image)."""
    medians = posterior.window_medians(_batch(image), radius)
    return medians.numpy().reshape(np.shape(image))


def blind_prediction(
    net: UNet | InferenceNet,
    image: np.ndarray,
    *,
    radius: int,
    stride: int = BLIND_STRIDE,
    context: tuple[tuple[int, int], tuple[int, int]] | None = None,
    **tiling,
) -> np.ndarray:
    """(outputs, Y, X) of ``net`` on a normalised (C, Y, X) or (Y, X) image, each pixel's
    from a pass in which that pixel was masked (in every channel, as training masks).
    ``tiling``: options of :func:`predict_tiled`; with its ``context`` the result
    covers the image without it."""
    height, width = np.shape(image)[-2:]
    (y_before, y_after), (x_before, x_after) = context or ((0, 0), (0, 0))
    core = (..., slice(y_before, height - y_after), slice(x_before, width - x_after))
    core_shape = (height - y_before - y_after, width - x_before - x_after)
    net = prepared(net, tiling.get("device", "cpu"))  # once for every pass

    def predict(masked: torch.Tensor) -> torch.Tensor:
        planes = masked[0].numpy()
        predicted = predict_tiled(
            net, planes[0] if len(planes) == 1 else planes, context=context, **tiling
        )
        predicted = predicted.reshape(-1, *core_shape)
        # the passes keep the pixels they masked by position in the whole image
        whole = torch.zeros((1, len(predicted), height, width))
        whole[core] = torch.from_numpy(predicted)
        return whole

    output = posterior.blind_spot_prediction(predict, _batch(image), radius=radius, stride=stride)
    return output[0][core].numpy()
