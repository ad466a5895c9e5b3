"""The paper's U-Net (Tab. 1): conv3x3 → BatchNorm → LeakyReLU, twice, per block.

One class serves both roles: ``residual=True`` is the denoiser (output = input +
correction, so the net learns only the noise-free correction, paper §3.2) and
``residual=False`` the segmenter (one channel of logits). N2V2's two changes against
checkerboard artefacts (Höck et al. 2022) are options: anti-aliased down-sampling
(``blur_pool``) and no skip connection at full resolution (``top_skip=False``). A
denoiser may add a learned blind-spot blur under its mean output (``blind_filter``): a
short run then starts from a linear predictor from the neighbours, not from nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

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
        self,
        in_channels: int,
        out_channels: int,
        negative_slope: float,
        dims: int = 2,
        groups: int = 1,
    ) -> None:
        layers: list[nn.Module] = []
        for channels_in in (in_channels, out_channels):
            layers += [
                _CONV[dims](
                    channels_in, out_channels, kernel_size=3, padding=1, bias=False, groups=groups
                ),
                _BATCH_NORM[dims](out_channels),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
        super().__init__(*layers)


class UNet(nn.Module):
    """2-D or 3-D U-Net of configurable depth and width; any input size (padded, cropped
    back). A 3-D net takes (B, C, Z, Y, X); with ``xy_only_levels`` its first levels
    pool in Y/X only, so anisotropic voxels (few, thick Z slices) are not squashed in Z.
    With ``channels="separate"`` every layer is a grouped convolution, one group per
    input channel: independent networks side by side, outputs in the order
    [means of every channel, then their variances].

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
        dims, groups = config.dims, config.groups
        if config.out_channels % groups:
            raise ValueError(f"{config.out_channels} output channels for {groups} groups")
        widths = [config.base_channels * 2**level * groups for level in range(config.depth + 1)]
        slope = config.negative_slope
        self.down = nn.ModuleList()
        channels = config.in_channels
        for width in widths[:-1]:
            self.down.append(ConvBlock(channels, width, slope, dims, groups))
            channels = width
        self.bottom = ConvBlock(widths[-2], widths[-1], slope, dims, groups)
        self.up = nn.ModuleList(
            ConvBlock(
                widths[level + 1] + widths[level] * self.has_skip(level),
                widths[level],
                slope,
                dims,
                groups,
            )
            for level in reversed(range(config.depth))
        )
        self.head = _CONV[dims](widths[0], config.out_channels, kernel_size=1, groups=groups)
        if config.blind_filter:
            kernel = blind_blur_kernel(config.in_channels, config.blind_filter, dims)
            self.blind_kernel = nn.Parameter(kernel)
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
        skips = []
        features = padded
        for block, factor in zip(self.down, self._factors, strict=True):
            features = block(features)
            skips.append(features)
            features = self.downsample(features, factor)
        features = self.bottom(features)
        for block, level in zip(self.up, reversed(range(config.depth)), strict=True):
            factor = self._factors[level]
            features = F.interpolate(
                features, scale_factor=tuple(float(f) for f in factor), mode="nearest"
            )
            features = block(self._join(features, self.skip(skips, level)))
        out = self.output(self.head(features), padded, sizes)
        return out[(..., *(slice(0, size) for size in sizes))]

    def downsample(self, features: torch.Tensor, factor: tuple[int, ...]) -> torch.Tensor:
        """Max-pooling by ``factor``, or N2V2's max-blur-pool (shared with the fused
        inference path, predict/inference.py)."""
        if self.config.blur_pool:
            return max_blur_pool(features, factor)
        return _MAX_POOL[len(factor)](features, factor)

    def output(
        self, head: torch.Tensor, padded: torch.Tensor, sizes: Sequence[int]
    ) -> torch.Tensor:
        """The head's output as the network gives it: grouped outputs in order, and a
        residual network's input added (to the mean channels only, not to a variance
        head's), or a blind-spot blur of the input (``sizes``: its spatial shape before
        padding). Shared with the fused inference path (predict/inference.py)."""
        config = self.config
        out = self._by_output(head)
        if not (config.blind_filter or config.residual):
            return out
        split = config.in_channels  # the mean channels; a variance head's follow
        mean = out[:, :split]
        if config.blind_filter:  # of the image alone: padding replicates edge pixels
            image = padded[(..., *(slice(0, size) for size in sizes))]
            extra = [whole - size for whole, size in zip(padded.shape[2:], sizes, strict=True)]
            mean = mean + F.pad(
                blind_blur(image, self.blind_kernel), [e for x in reversed(extra) for e in (0, x)]
            )
        if config.residual:
            mean = mean + padded
        if out.shape[1] == split:
            return mean
        return torch.cat([mean, out[:, split:]], dim=1)

    def has_skip(self, level: int) -> bool:
        """Whether level ``level`` has a skip connection: all but the top one without
        ``top_skip``."""
        return level > 0 or self.config.top_skip

    def skip(self, skips: list[torch.Tensor], level: int) -> torch.Tensor | None:
        """Level ``level``'s skip connection, or None where the network has none."""
        return skips[level] if self.has_skip(level) else None

    def _join(self, upsampled: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        """The skip connection's concatenation, group by group for grouped layers."""
        groups = self.config.groups
        if skip is None:
            return upsampled
        if groups == 1:
            return torch.cat([upsampled, skip], dim=1)
        batch, sizes = upsampled.shape[0], upsampled.shape[2:]
        parts = [t.reshape(batch, groups, -1, *sizes) for t in (upsampled, skip)]
        return torch.cat(parts, dim=2).reshape(batch, -1, *sizes)

    def _by_output(self, out: torch.Tensor) -> torch.Tensor:
        """Grouped head outputs (each group's mean, variance) reordered to all means,
        then all variances, as an ungrouped head gives them."""
        groups = self.config.groups
        per_group = self.config.out_channels // groups
        if groups == 1 or per_group == 1:
            return out
        batch, sizes = out.shape[0], out.shape[2:]
        return out.reshape(batch, groups, per_group, *sizes).transpose(1, 2).reshape(out.shape)


def blind_blur_kernel(channels: int, radius: int, dims: int, width: float = 1.0) -> torch.Tensor:
    """(channels, 1, 2r+1, ...) Gaussian weights of ``width`` without the centre tap,
    summing to 1: where :func:`blind_blur` starts."""
    axis = torch.arange(-radius, radius + 1, dtype=torch.float32)
    grids = torch.meshgrid(*[axis] * dims, indexing="ij")
    kernel = torch.exp(-sum(g.square() for g in grids) / (2 * width**2))
    kernel[(radius,) * dims] = 0.0
    return (kernel / kernel.sum()).expand(channels, 1, *kernel.shape).clone()


def blind_blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Each channel of a (B, C, ...) image filtered by its own learned ``kernel`` with
    the centre tap held at zero, so no pixel's value reaches its own output. Outside
    the image is zero (the normalised mean; the network corrects the edges): mirrored or
    replicated edges would hand a pixel near the edge its own value back."""
    radius, dims = kernel.shape[-1] // 2, kernel.dim() - 2
    centre = torch.ones_like(kernel)
    centre[(..., *(radius,) * dims)] = 0.0
    convolve = F.conv2d if dims == 2 else F.conv3d
    return convolve(image, kernel * centre, padding=radius, groups=image.shape[1])


def max_blur_pool(features: torch.Tensor, factor: tuple[int, ...]) -> torch.Tensor:
    """Anti-aliased down-sampling (Zhang, ICML 2019; N2V2): the maximum over each 2-pixel
    window at stride 1, then a [1, 2, 1] binomial blur sampled every ``factor`` pixels,
    per channel. Max-pooling alone aliases high frequencies into the coarse levels,
    which the decoder paints back as checkerboards. Edges are replicated."""
    dims = len(factor)
    pooled = [f > 1 for f in factor]
    ends = [p for f in reversed(pooled) for p in (0, int(f))]
    window = tuple(2 if f else 1 for f in pooled)
    features = _MAX_POOL[dims](F.pad(features, ends, mode="replicate"), window, stride=1)
    taps = features.new_tensor([0.25, 0.5, 0.25])
    kernel = features.new_ones(())
    for f in pooled:
        kernel = kernel[..., None] * (taps if f else taps.new_ones(1))
    channels = features.shape[1]
    weight = kernel.expand(channels, 1, *kernel.shape)
    sides = [p for f in reversed(pooled) for p in (int(f), int(f))]
    features = F.pad(features, sides, mode="replicate")
    convolve = F.conv2d if dims == 2 else F.conv3d
    return convolve(features, weight, stride=factor, groups=channels)


def without_variance_head(net: UNet) -> UNet:
    """A copy of a denoiser that predicts only its mean channels (a variance head, see
    models/noise_model.py, dropped): what training that needs the mean alone starts from."""
    config = net.config
    if config.out_channels == config.in_channels:
        return copy.deepcopy(net)
    mean = UNet(config.model_copy(update={"out_channels": config.in_channels}))
    state = net.state_dict()
    per_group = config.out_channels // config.groups
    means = config.in_channels // config.groups  # mean outputs per group, variances after
    rows = [r for r in range(config.out_channels) if r % per_group < means]
    for name in ("head.weight", "head.bias"):
        state[name] = state[name][rows]
    mean.load_state_dict(state)
    return mean.train(net.training)
