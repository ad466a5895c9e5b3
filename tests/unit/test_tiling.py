import numpy as np
import pytest
import torch

from semdenoise.config import UNetConfig
from semdenoise.models.unet import UNet
from semdenoise.predict.tiling import blend_weights, predict_tiled


def trained_looking_net(depth: int) -> UNet:
    torch.manual_seed(0)
    net = UNet(UNetConfig(depth=depth, base_channels=4))
    # non-trivial BatchNorm statistics, as after training
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("shape", [(97, 130), (64, 64), (150, 41)])
@pytest.mark.parametrize("depth", [1, 2])
def test_tiled_equals_whole_image(shape, depth):
    net = trained_looking_net(depth)
    image = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    whole = predict_tiled(net, image, tile_size=4096)
    for tile_size in (48, 72, 100):
        tiled = predict_tiled(net, image, tile_size=tile_size, batch_size=3)
        np.testing.assert_allclose(tiled, whole, atol=1e-4, rtol=1e-4)
    assert whole.shape == shape and whole.dtype == np.float32


def test_crop_agrees_with_whole_image_away_from_its_border():
    net = trained_looking_net(2)
    image = np.random.default_rng(2).normal(size=(160, 160)).astype(np.float32)
    whole = predict_tiled(net, image, tile_size=64)
    margin = net.config.receptive_radius + net.config.size_multiple
    crop = predict_tiled(net, image[16:144, 32:160], tile_size=64)
    np.testing.assert_allclose(
        crop[margin:-margin, margin:-margin],
        whole[16 + margin : 144 - margin, 32 + margin : 160 - margin],
        atol=1e-4,
    )


def test_blend_weights_vanish_in_the_halo_and_peak_in_the_centre():
    weights = blend_weights((64, 48), halo=8)
    assert (weights[:8] == 0).all() and (weights[:, -8:] == 0).all()
    assert (
        weights.argmax() == np.ravel_multi_index((31, 23), weights.shape)
        or weights[31:33, 23:25].max() == weights.max()
    )
    assert (weights[8:-8, 8:-8] > 0).all()


def test_a_three_class_network_tiles_like_its_whole_image_pass():
    torch.manual_seed(0)
    net = UNet(UNetConfig(depth=2, base_channels=4, out_channels=3, residual=False)).eval()
    image = np.random.default_rng(3).normal(size=(90, 77)).astype(np.float32)
    whole = predict_tiled(net, image, tile_size=4096)
    assert whole.shape == (3, 90, 77)
    tiled = predict_tiled(net, image, tile_size=48, batch_size=2)
    np.testing.assert_allclose(tiled, whole, atol=1e-4, rtol=1e-4)
