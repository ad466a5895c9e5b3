"""The paper's U-Net (Tab. 1): conv3x3 → BatchNorm → LeakyReLU, twice, per block.

One class serves both roles: ``residual=True`` is the denoiser (output = input +
correction, so the net learns only the noise-free correction, paper §3.2) and
``residual=False`` the segmenter (one channel of logits).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from semdenoise.config import UNetConfig

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAX_POOL = {2: F.max_pool2d, 3: F.max_pool3d}


class ConvBlock(nn.Sequential):
    """Two conv3x3(x3) → BatchNorm → LeakyReLU; BN before the activation as in the paper."""

    def __init__(
        self, in_channels: int, out_channels: int, negative_slope: float, dims: int = 2
    ) -> None:
        layers: list[nn.Module] = []
        for channels_in in (in_channels, out_channels):
            layers += [
                _CONV[dims](channels_in, out_channels, kernel_size=3, padding=1, bias=False),
                _BATCH_NORM[dims](out_channels),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
        super().__init__(*layers)


class UNet(nn.Module):
    """2-D or 3-D U-Net of configurable depth and width; any input size (padded, cropped
    back). A 3-D net takes (B, C, Z, Y, X); with ``xy_only_levels`` its first levels
    pool in Y/X only, so anisotropic voxels (few, thick Z slices) are not squashed in Z.

    Examples
    --------
    >>> net = UNet(UNetConfig(depth=2, base_channels=4)).eval()
    >>> net(torch.zeros(1, 1, 37, 50)).shape
    torch.Size([1, 1, 37, 50])
    >>> net = UNet(UNetConfig(dims=3, depth=2, base_channels=4, xy_only_levels=1)).eval()
    >>> net(torch.zeros(1, 1, 5, 21, 18)).shape
    torch.Size([1, 1, 5, 21, 18])
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        dims = config.dims
        widths = [config.base_channels * 2**level for level in range(config.depth + 1)]
        slope = config.negative_slope
        self.down = nn.ModuleList()
        channels = config.in_channels
        for width in widths[:-1]:
            self.down.append(ConvBlock(channels, width, slope, dims))
            channels = width
        self.bottom = ConvBlock(widths[-2], widths[-1], slope, dims)
        self.up = nn.ModuleList(
            ConvBlock(widths[level + 1] + widths[level], widths[level], slope, dims)
            for level in reversed(range(config.depth))
        )
        self.head = _CONV[dims](widths[0], config.out_channels, kernel_size=1)
        # Per level, the pooling factor along each spatial axis (Z first in 3-D).
        self._factors = [
            (2, 2) if dims == 2 else (2 if pools_z else 1, 2, 2) for pools_z in config.z_pooling
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        config = self.config
        sizes = x.shape[2:]
        multiples = (
            (config.size_multiple,) * 2
            if config.dims == 2
            else (config.z_multiple, config.size_multiple, config.size_multiple)
        )
        pads = [-size % multiple for size, multiple in zip(sizes, multiples, strict=True)]
        # Replicate, not zeros: a dark frame at the border would bias the residual output.
        if any(pads):
            padded = F.pad(x, [p for pad in reversed(pads) for p in (0, pad)], mode="replicate")
        else:
            padded = x
        pool = _MAX_POOL[config.dims]
        skips = []
        features = padded
        for block, factor in zip(self.down, self._factors, strict=True):
            features = block(features)
            skips.append(features)
            features = pool(features, factor)
        features = self.bottom(features)
        for block, skip, factor in zip(
            self.up, reversed(skips), reversed(self._factors), strict=True
        ):
            features = F.interpolate(
                features, scale_factor=tuple(float(f) for f in factor), mode="nearest"
            )
            features = block(torch.cat([features, skip], dim=1))
        out = self.head(features)
        if config.residual and config.out_channels > config.in_channels:
            # a denoiser with a variance head: the input is added to the mean channels only
            split = config.in_channels
            out = torch.cat([out[:, :split] + padded, out[:, split:]], dim=1)
        elif config.residual:
            out = out + padded
        return out[(..., *(slice(0, size) for size in sizes))]


def without_variance_head(net: UNet) -> UNet:
    """A copy of a denoiser that predicts only its mean channels (a variance head, see
    models/noise_model.py, dropped): what training that needs the mean alone starts from."""
    config = net.config
    if config.out_channels == config.in_channels:
        return copy.deepcopy(net)
    mean = UNet(config.model_copy(update={"out_channels": config.in_channels}))
    state = net.state_dict()
    for name in ("head.weight", "head.bias"):
        state[name] = state[name][: config.in_channels]
    mean.load_state_dict(state)
    return mean.train(net.training)
