import pytest
import torch

from semdenoise.config import UNetConfig
from semdenoise.models.unet import UNet


@pytest.mark.parametrize("shape", [(8, 8), (37, 50), (64, 33)])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_any_input_size_gives_the_same_size(shape, depth):
    net = UNet(UNetConfig(depth=depth, base_channels=4)).eval()
    assert net(torch.zeros(2, 1, *shape)).shape == (2, 1, *shape)


def test_residual_adds_the_input_and_segmenter_does_not():
    x = torch.randn(1, 1, 16, 16)
    denoiser = UNet(UNetConfig(base_channels=4, residual=True)).eval()
    segmenter = UNet(UNetConfig(base_channels=4, residual=False)).eval()
    for net in (denoiser, segmenter):
        torch.nn.init.zeros_(net.head.weight)
        torch.nn.init.zeros_(net.head.bias)
    assert torch.equal(denoiser(x), x)
    assert torch.equal(segmenter(x), torch.zeros_like(x))


def test_blocks_are_conv_batchnorm_leakyrelu():
    net = UNet(UNetConfig(depth=2, base_channels=4))
    kinds = [type(m).__name__ for m in net.down[0]]
    assert kinds == ["Conv2d", "BatchNorm2d", "LeakyReLU"] * 2


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_receptive_radius_bounds_the_influence_of_a_pixel(depth):
    config = UNetConfig(depth=depth, base_channels=2)
    net = UNet(config).eval()
    size = 4 * config.receptive_radius + 2 * config.size_multiple
    x = torch.randn(1, 1, size, size, requires_grad=True)
    centre = size // 2
    net(x)[0, 0, centre, centre].backward()
    influenced = x.grad[0, 0].abs() > 0
    ys, xs = torch.nonzero(influenced, as_tuple=True)
    reach = max((ys - centre).abs().max().item(), (xs - centre).abs().max().item())
    assert 0 < reach <= config.receptive_radius
