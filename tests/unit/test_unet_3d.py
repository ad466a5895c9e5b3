"""The 3-D U-Net, 3-D grid masking, volume augmentation and 3-D tiled prediction."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from semdenoise.config import MaskingConfig, UNetConfig
from semdenoise.io.model_file import load_model, model_to_dict, save_model
from semdenoise.models.normalization import Normalization
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet
from semdenoise.predict.tiling import blend_weights, predict_tiled
from semdenoise.training.masking import (
    grid_positions,
    mask_batch,
    neighbour_positions,
    window_medians,
)
from semdenoise.training.sampling import augment


def gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def net_3d(depth: int = 2, xy_only_levels: int = 0, seed: int = 0) -> UNet:
    """A 3-D net with non-trivial BatchNorm statistics, as after training."""
    torch.manual_seed(seed)
    config = UNetConfig(dims=3, depth=depth, base_channels=2, xy_only_levels=xy_only_levels)
    net = UNet(config)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("shape", [(3, 8, 8), (5, 21, 18), (9, 16, 33)])
@pytest.mark.parametrize(("depth", "xy_only"), [(1, 0), (2, 0), (2, 1), (2, 2)])
def test_any_volume_size_gives_the_same_size(shape, depth, xy_only):
    net = net_3d(depth, xy_only)
    assert net(torch.zeros(2, 1, *shape)).shape == (2, 1, *shape)


def test_blocks_are_conv3d_batchnorm3d_leakyrelu_and_residual_adds_the_input():
    net = UNet(UNetConfig(dims=3, depth=1, base_channels=4, residual=True)).eval()
    kinds = [type(m).__name__ for m in net.down[0]]
    assert kinds == ["Conv3d", "BatchNorm3d", "LeakyReLU"] * 2
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x = torch.randn(1, 1, 4, 8, 8)
    assert torch.equal(net(x), x)


def test_xy_only_levels_pool_y_x_only_and_shrink_the_z_context():
    config = UNetConfig(dims=3, depth=3, xy_only_levels=1)
    assert config.z_pooling == (False, True, True)
    assert config.z_multiple == 4 and config.size_multiple == 8
    assert config.receptive_radius_z < config.receptive_radius
    assert UNetConfig(dims=3, depth=2, xy_only_levels=2).min_size_z == 3
    assert UNetConfig(dims=3, depth=3).min_size_z == 8


@pytest.mark.parametrize(
    "values", [{"xy_only_levels": 1}, {"dims": 3, "depth": 1, "xy_only_levels": 2}]
)
def test_xy_only_levels_needs_a_deep_enough_3d_net(values):
    with pytest.raises(ValidationError, match="xy_only_levels"):
        UNetConfig(**values)


@pytest.mark.parametrize(("depth", "xy_only"), [(1, 0), (2, 1)])
def test_receptive_radii_bound_the_influence_of_a_voxel(depth, xy_only):
    net = net_3d(depth, xy_only)
    config = net.config
    size_z = 2 * config.receptive_radius_z + 2 * config.z_multiple + 2
    size = 2 * config.receptive_radius + 2 * config.size_multiple + 2
    x = torch.randn(1, 1, size_z, size, size, requires_grad=True)
    cz, c = size_z // 2, size // 2
    net(x)[0, 0, cz, c, c].backward()
    zs, ys, xs = torch.nonzero(x.grad[0, 0].abs() > 0, as_tuple=True)
    assert 0 < (zs - cz).abs().max().item() <= config.receptive_radius_z
    assert (
        0
        < max((ys - c).abs().max().item(), (xs - c).abs().max().item())
        <= (config.receptive_radius)
    )


def test_model_file_without_dims_loads_as_2d(tmp_path):
    net = UNet(UNetConfig(depth=1, base_channels=2))
    model = TrainedModel("n2v", {"denoiser": net}, Normalization(mean=1.0, std=2.0))
    payload = model_to_dict(model)
    for field in ("dims", "xy_only_levels"):  # as written before 3-D existed
        del payload["networks"]["denoiser"]["config"][field]
    torch.save(payload, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").denoiser.config.dims == 2


def test_3d_model_file_round_trip(tmp_path):
    net = net_3d(2, 1)
    save_model(TrainedModel("n2v", {"denoiser": net}, Normalization(0.0, 1.0)), tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt").denoiser
    assert loaded.config == net.config
    x = torch.randn(1, 1, 6, 16, 16)
    torch.testing.assert_close(loaded(x), net(x))


# ----- 3-D masking ------------------------------------------------------------------


def test_3d_grid_keeps_the_2d_density_in_voxels():
    config = MaskingConfig()
    grid = config.grid_shape(32, 64, 64)
    density = 32 * 64 * 64 / np.prod(grid)
    assert abs(density - config.pixels_per_mask) / config.pixels_per_mask < 0.15
    assert config.grid_shape(3, 64, 64)[0] == 1  # a thin volume: one cell in Z
    assert np.prod(MaskingConfig(n_masked=27).grid_shape(30, 30, 30)) == 27


def test_3d_grid_masks_exactly_one_voxel_per_cell():
    b, z, y, x = grid_positions(2, 12, 20, 30, grid=(3, 4, 5), generator=gen())
    assert len(b) == 2 * 60
    for volume in range(2):
        sel = b == volume
        cells = set(
            zip(*((c[sel] // side).tolist() for c, side in ((z, 4), (y, 5), (x, 6))), strict=True)
        )
        assert len(cells) == 60


def test_3d_neighbour_is_another_voxel_of_the_window_inside_the_volume():
    sizes = (4, 7, 6)
    zz, yy, xx = torch.meshgrid(*(torch.arange(s) for s in sizes), indexing="ij")
    coords = tuple(c.reshape(-1).repeat(100) for c in (zz, yy, xx))
    sources = neighbour_positions(coords, sizes, radius=2, generator=gen(1))
    same = torch.ones_like(coords[0], dtype=torch.bool)
    for c, s, size in zip(coords, sources, sizes, strict=True):
        same &= c == s
        assert ((s - c).abs() <= 2).all() and s.min() >= 0 and s.max() < size
    assert not same.any()
    interior = (coords[0] == 2) & (coords[1] == 3) & (coords[2] == 3)
    deltas = [(s[interior] - c[interior]).tolist() for c, s in zip(coords, sources, strict=True)]
    offsets = set(zip(*deltas, strict=True))
    assert len(offsets) > 50  # spread over the 5x5x5 window (124 others; 4 Z slices: fewer)


def test_3d_median_replacement_excludes_the_centre():
    volume = torch.arange(125, dtype=torch.float32).reshape(1, 1, 5, 5, 5)
    volume[0, 0, 2, 2, 2] = 1e6
    median = window_medians(volume, tuple(torch.tensor([v]) for v in (0, 2, 2, 2)), radius=2)
    others = torch.cat([volume.reshape(-1)[:62], volume.reshape(-1)[63:]])
    assert median.item() == others.median().item()


@pytest.mark.parametrize("replacement", ["neighbour", "median"])
def test_3d_masked_values_change_only_at_the_positions(replacement):
    volume = torch.randn(2, 1, 8, 24, 24)
    masked, (b, z, y, x) = mask_batch(
        volume, MaskingConfig(replacement=replacement), generator=gen()
    )
    keep = torch.ones_like(volume, dtype=torch.bool)
    keep[b, 0, z, y, x] = False
    assert torch.equal(masked[keep], volume[keep])
    assert (masked[b, 0, z, y, x] != volume[b, 0, z, y, x]).all()


def test_volume_augmentation_never_mixes_z_with_y_x():
    volume = torch.randn(1, 1, 4, 6, 6)
    for seed in range(24):
        out = augment(volume, gen(seed))
        assert out.shape == volume.shape
        for z in range(4):  # slice z is a rotation/flip of slice z or of slice 3 - z
            got = out[0, 0, z].flatten().sort().values
            assert any(
                torch.equal(got, volume[0, 0, source].flatten().sort().values)
                for source in (z, 3 - z)
            )


# ----- 3-D tiled prediction ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 40, 33), (12, 20, 30)])
@pytest.mark.parametrize(("depth", "xy_only"), [(1, 0), (2, 1)])
def test_3d_tiled_equals_whole_volume(shape, depth, xy_only):
    net = net_3d(depth, xy_only)
    config = net.config
    volume = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    whole = predict_tiled(net, volume, max_voxels=10**9)
    assert whole.shape == shape and whole.dtype == np.float32
    # windows a little larger than their halos: a few per axis
    small = (2 * config.receptive_radius_z + 4, *(2 * [2 * config.receptive_radius + 32]))
    tiled = predict_tiled(net, volume, tile_size=small, batch_size=3)
    np.testing.assert_allclose(tiled, whole, atol=1e-4, rtol=1e-4)
    radii = (config.receptive_radius_z, config.receptive_radius, config.receptive_radius)
    padded = np.add(shape, np.multiply(2, radii))
    by_budget = predict_tiled(net, volume, max_voxels=int(0.5 * np.prod(padded)))
    np.testing.assert_allclose(by_budget, whole, atol=1e-4, rtol=1e-4)


def test_3d_blend_weights_vanish_in_each_axis_halo():
    weights = blend_weights((16, 24, 20), (2, 4, 4))
    assert (weights[:2] == 0).all() and (weights[-2:] == 0).all()
    assert (weights[:, :4] == 0).all() and (weights[:, :, -4:] == 0).all()
    assert (weights[2:-2, 4:-4, 4:-4] > 0).all()


def test_3d_prediction_never_moves_or_switches_the_callers_network(monkeypatch):
    """Dask threads share one network: prediction works on a prepared copy."""
    net = net_3d(depth=1).train()  # as a caller might hold it
    before = {k: v.clone() for k, v in net.state_dict().items()}

    move = torch.nn.Module.to

    def refuse_for_the_callers(module, *args, **kwargs):
        if module is net:
            raise AssertionError("moved the caller's network")
        return move(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", refuse_for_the_callers)
    volume = np.random.default_rng(2).normal(size=(6, 24, 24)).astype(np.float32)
    first = predict_tiled(net, volume)
    assert net.training and all(m.training for m in net.modules())
    for name, value in net.state_dict().items():  # BatchNorm statistics included
        assert torch.equal(value, before[name]), name
    # the prediction is the eval-mode network's, whatever mode the caller's is in
    monkeypatch.undo()
    expected = predict_tiled(net_3d(depth=1), volume)
    np.testing.assert_allclose(first, expected, atol=1e-5, rtol=1e-5)
