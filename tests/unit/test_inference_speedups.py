"""Inference speed-ups change speed, never values, and never the network handed in."""

import numpy as np
import pytest
import torch

from semdenoise.config import UNetConfig
from semdenoise.models.unet import UNet
from semdenoise.predict.inference import conv_flops_per_pixel, fold_batchnorm, inference_network
from semdenoise.predict.tiling import predict_tiled


def trained_looking_net(depth: int, residual: bool = True, **channels) -> UNet:
    torch.manual_seed(0)
    net = UNet(UNetConfig(depth=depth, base_channels=4, residual=residual, **channels))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize(
    "channels",
    [
        {},
        {"out_channels": 2},  # a variance head: the residual goes to the mean only
        {"in_channels": 2, "out_channels": 4, "channels": "separate"},
        {"in_channels": 2, "out_channels": 2},
        {"out_channels": 2, "blur_pool": True, "top_skip": False},  # N2V2's network
        {"in_channels": 2, "out_channels": 4, "blind_filter": 3},  # a blind-spot blur
    ],
)
def test_every_variant_equals_the_plain_network(depth, residual, channels):
    net = trained_looking_net(depth, residual, **channels)
    x = torch.randn(2, net.config.in_channels, 37, 50)
    with torch.inference_mode():
        expected = net(x)
        for options in (
            {},
            {"fold": False},
            {"fused_decoder": False},
            {"channels_last": False},
            {"channels_last": False, "fused_decoder": False, "fold": False},
        ):
            result = inference_network(net, **options)(x)
            torch.testing.assert_close(result, expected, atol=1e-5, rtol=1e-5)


def test_folding_removes_every_batchnorm_and_leaves_the_original_alone():
    net = trained_looking_net(2)
    before = {name: value.clone() for name, value in net.state_dict().items()}
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    predict_tiled(net, np.zeros((40, 40), np.float32))
    assert net.down[0][0].weight.is_contiguous()  # not left in channels-last


def test_bfloat16_runs_and_stays_close():
    net = trained_looking_net(2)
    x = torch.randn(1, 1, 32, 32)
    with torch.inference_mode():
        result = inference_network(net, dtype=torch.bfloat16)(x)
        assert result.dtype == torch.float32
        torch.testing.assert_close(result, net(x), atol=0.1, rtol=0.05)


def test_flops_per_pixel_counts_every_convolution():
    # depth 1, widths 4 and 8: multiply-adds per pixel, full resolution unless noted
    down = 9 * (1 * 4 + 4 * 4)
    bottom = 9 * (4 * 8 + 8 * 8) / 4  # a quarter of the pixels
    up = 9 * (12 * 4 + 4 * 4)
    head = 4
    net = UNet(UNetConfig(depth=1, base_channels=4))
    assert conv_flops_per_pixel(net, side=32) == 2 * (down + bottom + up + head)


@pytest.mark.parametrize(
    "config",
    [
        {"depth": 2},
        {"depth": 2, "xy_only_levels": 1},  # pools (1, 2, 2) first, then (2, 2, 2)
        {"depth": 1, "residual": True, "out_channels": 2},  # residual to the mean only
        {"depth": 2, "xy_only_levels": 1, "blur_pool": True, "top_skip": False},  # N2V2
        {"depth": 1, "out_channels": 2, "blind_filter": 2},  # a blind-spot blur
    ],
)
def test_3d_fused_channels_last_network_equals_the_plain_network(config):
    torch.manual_seed(0)
    net = UNet(UNetConfig(dims=3, base_channels=4, **config))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(2, 1, 11, 37, 26)  # not multiples of the pooling cell: padded, cropped
    runner = inference_network(net)
    assert runner.fused_decoder and runner.channels_last  # the CPU defaults, in 3-D too
    with torch.inference_mode():
        torch.testing.assert_close(runner(x), net(x), atol=1e-5, rtol=1e-5)
