"""The network a BioImage Model Zoo package runs: a model's U-Nets behind one module.

This module imports torch, the U-Net and models/posterior.py only: ``export/source.py``
ships it, joined to ``models/unet.py`` and ``models/posterior.py``, as the package's
architecture file, so the package loads with PyTorch alone (no semdenoise installed). The
U-Nets get their configuration as a plain dict of the attributes they read (evaluated by
semdenoise's config at export time), so no logic of the pydantic config is copied into
the package; the posterior mean is the very code ``semdenoise denoise`` runs.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from semdenoise.models.posterior import blind_spot_prediction, posterior_denoised
from semdenoise.models.unet import UNet


class ExportedNetwork(nn.Module):
    """A denoiser, a segmenter, or both in a cascade (the segmenter sees the denoised
    image, as a joint model was trained, paper §2.2, or the noisy and the denoised image
    as channels when it takes twice the denoiser's channels), on normalised images.

    Outputs: the denoised image, then the foreground probability (sigmoid of one logit,
    or 1 - background of a background / interior / boundary softmax). One output is
    returned as a tensor, two as a tuple (denoised, probability).

    The denoised image is the network's mean prediction, or, for a denoiser that learned
    a noise model (``posterior``: per channel ``offset`` and ``slope`` of its noise
    variance, the masking ``radius`` and the pass grid's ``stride``, and where measured
    the blind passes' residual by the head's variance, ``residual_log_variances`` and
    ``residual_levels``, per channel lists of equal length), the posterior mean
    of its blind-spot prediction and the observed pixel, as ``semdenoise denoise``
    gives by default (models/posterior.py).
    """

    def __init__(
        self,
        denoiser: dict | None = None,
        segmenter: dict | None = None,
        halos: dict | None = None,
        background: int = 0,
        posterior: dict | None = None,
    ) -> None:
        super().__init__()
        if denoiser is None and segmenter is None:
            raise ValueError("a denoiser, a segmenter or both")
        if posterior is not None and (denoiser is None or segmenter is not None):
            # a joint model learns no noise model: its segmenter was trained on the mean
            raise ValueError("the posterior mean is for a denoiser alone")
        self.denoiser = None if denoiser is None else UNet(types.SimpleNamespace(**denoiser))
        self.segmenter = None if segmenter is None else UNet(types.SimpleNamespace(**segmenter))
        self.channels = None if denoiser is None else int(denoiser["in_channels"])
        # a joint segmenter trained on the noisy and the denoised image as channels
        self.segments_noisy = (
            segmenter is not None
            and self.channels is not None
            and int(segmenter["in_channels"]) == 2 * self.channels
        )
        # per network, the reflected margin ([Z,] Y, X) it runs with, as semdenoise's
        # tiler pads an image: borders then match semdenoise's prediction exactly
        halos = halos or {}
        self.denoiser_halo = list(halos.get("denoiser", []))
        self.segmenter_halo = list(halos.get("segmenter", []))
        self.background = background
        self.posterior = posterior is not None
        posterior = posterior or {"offset": [0.0], "slope": [0.0], "radius": 0, "stride": 1}
        # (1, C, 1, 1), per channel; not in the state dict: they come with the kwargs
        for name in ("offset", "slope"):
            values = torch.tensor(posterior[name], dtype=torch.float32).reshape(1, -1, 1, 1)
            self.register_buffer(name, values, persistent=False)
        self.radius = int(posterior["radius"])
        self.stride = int(posterior["stride"])
        # the blind passes' residual by log v, (C, K) knots and levels, if measured
        self.measured_residual = "residual_levels" in posterior
        for name in ("residual_log_variances", "residual_levels"):
            values = posterior.get(name)
            values = None if values is None else torch.tensor(values, dtype=torch.float32)
            self.register_buffer(name, values, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        denoised = None
        if self.denoiser is not None and self.posterior:
            predicted = blind_spot_prediction(
                self._denoiser_outputs, image, radius=self.radius, stride=self.stride
            )
            residual = None
            if self.measured_residual:
                residual = (self.residual_log_variances, self.residual_levels)
            return posterior_denoised(image, predicted, self.offset, self.slope, residual=residual)
        if self.denoiser is not None:
            denoised = self._denoiser_outputs(image)[:, : self.channels]
            image = torch.cat([image, denoised], dim=1) if self.segments_noisy else denoised
        if self.segmenter is None:
            return denoised
        logits = _with_margin(self.segmenter, image, self.segmenter_halo)
        if logits.shape[1] == 1:
            probability = torch.sigmoid(logits)
        else:  # background / interior / boundary: foreground is not-background
            background = self.background
            probability = 1.0 - torch.softmax(logits, dim=1)[:, background : background + 1]
        return probability if denoised is None else (denoised, probability)

    def _denoiser_outputs(self, image: torch.Tensor) -> torch.Tensor:
        """Every output channel of the denoiser (means, then any variances)."""
        return _with_margin(self.denoiser, image, self.denoiser_halo)


def _with_margin(net: nn.Module, image: torch.Tensor, halo: list[int]) -> torch.Tensor:
    """``net`` on ``image`` reflect-padded by ``halo`` per spatial axis, cropped back."""
    if not any(halo):
        return net(image)
    pads = [p for h in reversed(halo) for p in (h, h)]
    out = net(F.pad(image, pads, mode="reflect"))
    return out[(..., *(slice(h, -h if h else None) for h in halo))]
