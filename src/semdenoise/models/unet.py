"""The paper's U-Net (Tab. 1): conv3x3 → BatchNorm → LeakyReLU, twice, per block.

One class serves both roles: ``residual=True`` is the denoiser (output = input +
correction, so the net learns only the noise-free correction, paper §3.2) and
``residual=False`` the segmenter (one channel of logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semdenoise.config import UNetConfig


class ConvBlock(nn.Sequential):
    """Two conv3x3 → BatchNorm → LeakyReLU; BN before the activation as in the paper."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float) -> None:
        layers: list[nn.Module] = []
        for channels_in in (in_channels, out_channels):
            layers += [
                nn.Conv2d(channels_in, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
        super().__init__(*layers)


class UNet(nn.Module):
    """2D U-Net of configurable depth and width; any input size (padded, cropped back).

    Examples
    --------
    >>> net = UNet(UNetConfig(depth=2, base_channels=4)).eval()
    >>> net(torch.zeros(1, 1, 37, 50)).shape
    torch.Size([1, 1, 37, 50])
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.base_channels * 2**level for level in range(config.depth + 1)]
        slope = config.negative_slope
        self.down = nn.ModuleList()
        channels = config.in_channels
        for width in widths[:-1]:
            self.down.append(ConvBlock(channels, width, slope))
            channels = width
        self.bottom = ConvBlock(widths[-2], widths[-1], slope)
        self.up = nn.ModuleList(
            ConvBlock(widths[level + 1] + widths[level], widths[level], slope)
            for level in reversed(range(config.depth))
        )
        self.head = nn.Conv2d(widths[0], config.out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = self.config.size_multiple
        pad_y, pad_x = -height % multiple, -width % multiple
        # Replicate, not zeros: a dark frame at the border would bias the residual output.
        padded = F.pad(x, (0, pad_x, 0, pad_y), mode="replicate") if pad_y or pad_x else x
        skips = []
        features = padded
        for block in self.down:
            features = block(features)
            skips.append(features)
            features = F.max_pool2d(features, 2)
        features = self.bottom(features)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            features = F.interpolate(features, scale_factor=2.0, mode="nearest")
            features = block(torch.cat([features, skip], dim=1))
        out = self.head(features)
        if self.config.residual:
            out = out + padded
        return out[..., :height, :width]
