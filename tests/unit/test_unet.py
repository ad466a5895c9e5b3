import types

import pytest
import torch

from semdenoise.config import UNetConfig
from semdenoise.export.source import architecture_source, unet_kwargs
from semdenoise.models.unet import UNet, blind_blur, blind_blur_kernel, max_blur_pool

N2V2 = {"blur_pool": True, "top_skip": False}


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
@pytest.mark.parametrize("options", [{}, N2V2, {"blur_pool": True}, {"blind_filter": 8}])
def test_receptive_radius_bounds_the_influence_of_a_pixel(depth, options):
    config = UNetConfig(depth=depth, base_channels=2, **options)
    net = UNet(config).eval()
    size = 4 * config.receptive_radius + 2 * config.size_multiple
    x = torch.randn(1, 1, size, size, requires_grad=True)
    centre = size // 2
    net(x)[0, 0, centre, centre].backward()
    influenced = x.grad[0, 0].abs() > 0
    ys, xs = torch.nonzero(influenced, as_tuple=True)
    reach = max((ys - centre).abs().max().item(), (xs - centre).abs().max().item())
    assert 0 < reach <= config.receptive_radius


@pytest.mark.parametrize("shape", [(8, 8), (37, 50)])
def test_n2v2_network_keeps_any_size_and_has_no_full_resolution_skip(shape):
    config = UNetConfig(depth=2, base_channels=4, **N2V2)
    net = UNet(config).eval()
    assert net(torch.zeros(2, 1, *shape)).shape == (2, 1, *shape)
    top = net.up[-1][0]  # the last decoder block sees the upsampled level 1 only
    assert top.in_channels == 2 * config.base_channels
    assert UNet(UNetConfig(depth=2, base_channels=4)).up[-1][0].in_channels == 12


def test_blur_pool_halves_keeps_constants_and_is_steadier_under_shifts():
    constant = torch.full((1, 3, 8, 10), 2.5)
    torch.testing.assert_close(max_blur_pool(constant, (2, 2)), torch.full((1, 3, 4, 5), 2.5))
    # anti-aliasing: moving the input by one pixel changes the pooled image less than it
    # changes max-pooling's, which keeps every other sample of the fine detail
    torch.manual_seed(0)
    image = torch.randn(1, 1, 66, 66)
    moved = image[..., 1:65, 1:65], image[..., 1:65, 2:66]
    changes = {}
    for name, pool in (("max", torch.nn.functional.max_pool2d), ("blur", max_blur_pool)):
        a, b = (pool(m, (2, 2)) for m in moved)
        changes[name] = ((a - b).norm() / a.norm()).item()
    assert changes["blur"] < 0.7 * changes["max"]
    volume = torch.randn(1, 2, 5, 8, 6)
    assert max_blur_pool(volume, (1, 2, 2)).shape == (1, 2, 5, 4, 3)


@pytest.mark.parametrize("options", [N2V2, {"blind_filter": 3}])
def test_the_exported_architecture_builds_the_same_network(options):
    torch.manual_seed(0)
    config = UNetConfig(depth=2, base_channels=4, out_channels=2, **options)
    net = UNet(config).eval()
    namespace: dict = {}
    exec(compile(architecture_source(), "architecture.py", "exec"), namespace)
    shipped = namespace["UNet"](types.SimpleNamespace(**unet_kwargs(config)))
    shipped.load_state_dict(net.state_dict())
    x = torch.randn(1, 1, 37, 50)
    with torch.no_grad():
        torch.testing.assert_close(shipped.eval()(x), net(x))


@pytest.mark.parametrize("shape", [(9, 12), (3, 40)])
def test_the_blind_blur_never_passes_a_pixel_its_own_value(shape):
    kernel = torch.randn(2, 1, 5, 5)  # any learned weights, centre included
    x = torch.randn(1, 2, *shape, requires_grad=True)
    out = blind_blur(x, kernel)
    assert out.shape == x.shape
    for c, y, xx in [(0, 0, 0), (1, shape[0] // 2, shape[1] // 2), (1, shape[0] - 1, 1)]:
        (grad,) = torch.autograd.grad(out[0, c, y, xx], x, retain_graph=True)
        assert grad[0, c, y, xx] == 0  # at edges too
        assert grad[0, c].abs().sum() > 0 and grad[0, 1 - c].abs().sum() == 0


def test_a_blind_filter_starts_the_denoiser_as_a_blind_spot_blur():
    kernel = blind_blur_kernel(1, 3, 2)
    assert kernel[0, 0, 3, 3] == 0 and torch.isclose(kernel.sum(), torch.tensor(1.0))
    assert kernel[0, 0, 3, 2] > kernel[0, 0, 3, 1] > kernel[0, 0, 3, 0] > 0  # Gaussian
    net = UNet(UNetConfig(depth=2, base_channels=4, blind_filter=3, out_channels=2)).eval()
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x = torch.randn(1, 1, 37, 50)
    out = net(x)
    torch.testing.assert_close(out[:, :1], blind_blur(x, kernel))  # the mean: the blur
    assert torch.equal(out[:, 1:], torch.zeros_like(x))  # a variance head gets none
    constant = torch.full((1, 1, 16, 16), 2.0)
    inner = (..., slice(3, -3), slice(3, -3))  # weights sum to one: a constant is kept
    torch.testing.assert_close(net(constant)[:, :1][inner], constant[inner])
    volume = UNet(UNetConfig(dims=3, depth=1, base_channels=2, blind_filter=2)).eval()
    assert volume(torch.randn(1, 1, 6, 10, 12)).shape == (1, 1, 6, 10, 12)
