import numpy as np
import pytest
import torch

from semdenoise.config import UNetConfig
from semdenoise.errors import InputError
from semdenoise.models.unet import UNet
from semdenoise.predict.inference import inference_network
from semdenoise.predict.tiling import blend_weights, predict_tiled, predict_tta


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


@pytest.mark.parametrize(("dims", "shape"), [(2, (2, 70, 53)), (3, (2, 9, 40, 33))])
def test_a_two_channel_network_tiles_like_its_whole_image_pass(dims, shape):
    """(in_channels, *spatial) in, (out_channels, *spatial) out; padding on spatial axes."""
    torch.manual_seed(0)
    config = UNetConfig(dims=dims, in_channels=2, out_channels=2, depth=2, base_channels=4)
    net = UNet(config).eval()
    image = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    # the whole image through the network at once, reflect-padded by the halo like the tiles
    radii = (config.receptive_radius_z,)[: dims - 2] + (config.receptive_radius,) * 2
    multiples = (config.z_multiple,)[: dims - 2] + (config.size_multiple,) * 2
    halos = [-(-r // m) * m for r, m in zip(radii, multiples, strict=True)]
    padded = np.pad(image, [(0, 0)] + [(h, h) for h in halos], mode="reflect")
    with torch.inference_mode():
        whole = net(torch.from_numpy(padded)[None])[0].numpy()
    whole = whole[(slice(None), *(slice(h, h + n) for h, n in zip(halos, shape[1:], strict=True)))]
    side = 2 * config.receptive_radius + 24  # a few windows per axis, Z's as small as can be
    tile_size = side if dims == 2 else (1, side, side)
    tiled = predict_tiled(net, image, tile_size=tile_size, batch_size=2)
    assert tiled.shape == shape and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("in_channels", "shape", "needs"),
    [
        (2, (3, 40, 40), r"needs \(2, Y, X\)"),
        (2, (40, 40), r"needs \(2, Y, X\)"),
        (1, (2, 40, 40), r"needs \(Y, X\)"),
    ],
)
def test_an_image_without_the_networks_channel_axis_is_refused(in_channels, shape, needs):
    config = UNetConfig(in_channels=in_channels, depth=1, base_channels=4, channels="together")
    net = UNet(config)
    with pytest.raises(InputError, match=needs):
        predict_tiled(net, np.zeros(shape, np.float32))


def _input_shapes(runner) -> list[tuple[int, ...]]:
    """The shape of every batch ``runner`` is called on, recorded as it runs."""
    shapes: list[tuple[int, ...]] = []
    runner.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    return shapes


@pytest.mark.parametrize(
    ("config", "shape", "cut"),
    [
        # a crop at the image's top edge: no context above, real context below and beside
        (UNetConfig(depth=2, base_channels=4), (150, 170), (slice(0, 96), slice(40, 120))),
        (
            UNetConfig(dims=3, depth=1, base_channels=4),
            (30, 44, 46),
            (slice(10, 20), slice(0, 24), slice(12, 34)),
        ),
    ],
)
def test_context_is_not_padded_again_and_gives_the_whole_images_values(config, shape, cut):
    """A crop read with a halo of real context around its core (a Zarr chunk): the network
    sees exactly that crop, padded by the halo only where the image ends, and predicts
    the core as the whole image does."""
    torch.manual_seed(0)
    runner = inference_network(UNet(config).eval())
    image = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    whole = predict_tiled(runner, image, tile_size=4096)
    radii = (config.receptive_radius_z,)[: config.dims - 2] + (config.receptive_radius,) * 2
    multiples = (config.z_multiple,)[: config.dims - 2] + (config.size_multiple,) * 2
    halos = [-(-r // m) * m for r, m in zip(radii, multiples, strict=True)]
    read = tuple(
        slice(max(s.start - h, 0), min(s.stop + h, n))
        for s, h, n in zip(cut, halos, shape, strict=True)
    )
    context = [(s.start - r.start, r.stop - s.stop) for s, r in zip(cut, read, strict=True)]
    seen = _input_shapes(runner)
    core = predict_tiled(runner, image[read], tile_size=4096, context=context)
    # the chunk with its halo, and the halo padded only where the image ends
    assert seen == [(1, 1, *(s.stop - s.start + 2 * h for s, h in zip(cut, halos, strict=True)))]
    assert core.shape == image[cut].shape
    data_range = float(image.max() - image.min())
    np.testing.assert_allclose(core, whole[cut], atol=1e-4 * data_range, rtol=0)
    if config.dims == 2:  # the 8 symmetries carry the context along
        tta = predict_tta(runner, image[read], tile_size=4096, context=context)
        whole_tta = predict_tta(runner, image, tile_size=4096)
        np.testing.assert_allclose(tta, whole_tta[cut], atol=1e-4 * data_range, rtol=0)
