"""A network prepared for fast inference: BatchNorm folded into the convolutions.

Prediction never trains, so each BatchNorm is a fixed per-channel affine map and can be
folded into the weights and bias of the convolution before it: one pass over memory
fewer per layer (about a sixth of the CPU time of the default network, measured in
``benchmarks/predict_speed.py``). On the CPU the network also runs in channels-last
memory layout (2-D and 3-D), and its decoder writes the upsampled features and the skip
connection straight into one channels-last buffer: ``torch.cat`` and nearest upsampling
of channels-last tensors take slow generic paths (together about a quarter of the time).
For the 3-D CPU preset the two together halve the time of a 48x96x96 window
(``benchmarks/zarr_speed.py``). The saved model and the network handed in are never
changed; this works on a copy.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from semdenoise.models.unet import UNet

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of ``net`` in eval mode with every conv → BatchNorm pair folded into the conv.

    Works for any ``nn.Sequential`` holding such pairs (2-D and 3-D U-Nets alike); the
    BatchNorm is replaced by ``nn.Identity``. Outputs agree with ``net.eval()`` up to
    float rounding.
    """
    folded = copy.deepcopy(net).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, _CONVS) and isinstance(norm, nn.modules.batchnorm._BatchNorm):
                module[index] = _folded_conv(conv, norm)
                module[index + 1] = nn.Identity()
    return folded


@torch.no_grad()
def _folded_conv(conv: nn.Module, norm: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """conv followed by BN(x) = (x - mean) / sqrt(var + eps) * gamma + beta, as one conv."""
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    scale = torch.rsqrt(norm.running_var.double() + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.double()
    shift = -norm.running_mean.double() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.double()
    bias = conv.bias.double() * scale + shift if conv.bias is not None else shift
    folded = copy.deepcopy(conv)
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    folded.weight = nn.Parameter((conv.weight.double() * scale.view(shape)).to(conv.weight.dtype))
    folded.bias = nn.Parameter(bias.to(conv.weight.dtype))
    return folded


class InferenceNet(nn.Module):
    """A U-Net ready for prediction: what :func:`inference_network` returns.

    ``config`` is the original network's, so tiling code treats both alike.
    """

    def __init__(
        self, net: nn.Module, *, channels_last: bool, fused_decoder: bool, dtype: torch.dtype
    ) -> None:
        super().__init__()
        self.net = net
        self.config = net.config
        self.channels_last = channels_last
        self.fused_decoder = fused_decoder
        self.dtype = dtype

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """The input in the layout and precision the network runs in."""
        batch = batch.to(self.dtype)
        if self.channels_last:
            layout = torch.channels_last if batch.dim() == 4 else torch.channels_last_3d
            batch = batch.contiguous(memory_format=layout)
        return batch

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = self.prepare(batch)
        out = _fused_forward(self.net, batch) if self.fused_decoder else self.net(batch)
        return out.float()


def inference_network(
    net: UNet,
    device: torch.device | str = "cpu",
    *,
    fold: bool = True,
    channels_last: bool | None = None,
    fused_decoder: bool | None = None,
    dtype: torch.dtype = torch.float32,
) -> InferenceNet:
    """A prepared copy of ``net`` on ``device``: the defaults are the fastest measured.

    ``channels_last`` and ``fused_decoder`` default to on for the CPU (2-D and 3-D),
    off elsewhere. ``dtype=torch.bfloat16`` halves the memory traffic where
    the CPU has native bfloat16; on CPUs without it (AVX2 only) it is slower.
    """
    device = torch.device(device)
    prepared = fold_batchnorm(net) if fold else copy.deepcopy(net).eval()
    on_cpu = device.type == "cpu"
    if channels_last is None:
        channels_last = on_cpu
    if fused_decoder is None:
        fused_decoder = channels_last and _is_plain_unet(prepared)
    prepared = prepared.to(device=device, dtype=dtype)
    if channels_last:
        layout = torch.channels_last if net.config.dims == 2 else torch.channels_last_3d
        prepared = prepared.to(memory_format=layout)
    return InferenceNet(
        prepared, channels_last=channels_last, fused_decoder=fused_decoder, dtype=dtype
    ).eval()


def _is_plain_unet(net: nn.Module) -> bool:
    """The fused decoder re-implements the U-Net's forward; use it only on that
    (ungrouped: grouped skip connections interleave their channels)."""
    return (
        isinstance(net, UNet)
        and net.config.groups == 1
        and all(hasattr(net, name) for name in ("down", "bottom", "up", "head", "_factors"))
    )


def _fused_forward(net: UNet, x: torch.Tensor) -> torch.Tensor:
    """``UNet.forward`` (2-D or 3-D), with upsampling and concatenation fused into one
    buffer."""
    config = net.config
    sizes = x.shape[2:]
    multiples = (config.z_multiple,) * (config.dims - 2) + (config.size_multiple,) * 2
    pads = [-size % multiple for size, multiple in zip(sizes, multiples, strict=True)]
    if any(pads):
        x = F.pad(x, [p for pad in reversed(pads) for p in (0, pad)], mode="replicate")
    skips = []
    features = x
    for block, factor in zip(net.down, net._factors, strict=True):
        features = block(features)
        skips.append(features)
        features = net.downsample(features, factor)
    features = net.bottom(features)
    for block, level in zip(net.up, reversed(range(config.depth)), strict=True):
        features = block(_upsample_concat(features, net.skip(skips, level), net._factors[level]))
    out = net.output(net.head(features), x, sizes)
    return out[(..., *(slice(0, size) for size in sizes))]


def _upsample_concat(
    low: torch.Tensor, skip: torch.Tensor | None, factor: tuple[int, ...]
) -> torch.Tensor:
    """``cat([nearest_upsample(low, factor), skip], dim=1)`` written into one
    channels-last buffer: two strided copies instead of two slow generic kernels (no
    ``skip``: the upsampled ``low`` alone)."""
    if skip is None:
        return F.interpolate(low, scale_factor=tuple(float(f) for f in factor), mode="nearest")
    batch, low_channels, *sizes = low.shape
    dims = len(sizes)
    channels = low_channels + skip.shape[1]
    out = torch.empty(
        (batch, channels, *(s * f for s, f in zip(sizes, factor, strict=True))),
        dtype=low.dtype,
        device=low.device,
        memory_format=torch.channels_last if dims == 2 else torch.channels_last_3d,
    )
    to_last = (0, *range(2, 2 + dims), 1)  # (B, C, *spatial) -> (B, *spatial, C)
    last = out.permute(to_last)  # a contiguous view of the channels-last buffer
    split = [n for s, f in zip(sizes, factor, strict=True) for n in (s, f)]
    upsampled = last.view(batch, *split, channels)[..., :low_channels]
    source = low.permute(to_last)
    for axis in range(dims):  # a length-1 axis after each spatial one, broadcast by copy_
        source = source.unsqueeze(2 + 2 * axis)
    upsampled.copy_(source)
    last[..., low_channels:].copy_(skip.permute(to_last))
    return out


def conv_flops_per_pixel(net: nn.Module, side: int = 256) -> float:
    """Floating-point operations per input pixel (or voxel) of ``net``'s convolutions.

    Counted from the layers themselves on a probe input of ``side`` per axis: each
    convolution costs 2 * in_channels/groups * kernel volume per output element (a
    multiply and an add). The elementwise work (activations, pooling, copies) is left
    out: it is what a fraction of the CPU's convolution ceiling should be measured on.
    """
    counts: list[float] = []

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        kernel = module.weight[0].numel()  # in_channels/groups * kernel volume
        counts.append(2.0 * kernel * output.numel())

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, _CONVS)]
    try:
        dims = net.config.dims
        with torch.inference_mode():
            copy.deepcopy(net).eval()(torch.zeros((1, net.config.in_channels) + (side,) * dims))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(counts) / side**dims
