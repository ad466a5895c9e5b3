"""Neighbor2Neighbor's sub-images and loss (training/neighbor2neighbor.py)."""

import torch

from semdenoise.config import UNetConfig
from semdenoise.models.unet import UNet
from semdenoise.training.neighbor2neighbor import (
    NEIGHBOUR_PAIRS,
    neighbor2neighbor_loss,
    neighbour_subsample,
    noise2noise_term,
    pair_choice,
)


def coordinates(batch: int, channels: int, h: int, w: int) -> torch.Tensor:
    """Images whose values say where a pixel is: channel * 1e6 + y * 1000 + x."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    plane = (y * 1000 + x).double()
    return torch.stack(
        [torch.stack([plane + c * 1e6 for c in range(channels)]) for _ in range(batch)]
    )


def test_the_two_sub_images_take_different_adjacent_pixels_of_each_cell():
    images = coordinates(2, 3, 9, 11)  # odd sides: the last row and column are left out
    choice = pair_choice(images, torch.Generator().manual_seed(0))
    assert choice.shape == (2, 4, 5)
    first, second = neighbour_subsample(images, choice)
    assert first.shape == second.shape == (2, 3, 4, 5)
    for sub in (first, second):  # every channel takes the same pixel
        torch.testing.assert_close(sub[:, 1] - sub[:, 0], torch.full_like(sub[:, 0], 1e6))
    plane_first, plane_second = first[:, 0], second[:, 0]
    y1, x1 = plane_first // 1000, plane_first % 1000
    y2, x2 = plane_second // 1000, plane_second % 1000
    cell_y, cell_x = torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij")
    for y, x in ((y1, x1), (y2, x2)):  # inside the pixel's own 2x2 cell
        assert torch.equal(y // 2, cell_y.expand_as(y).double())
        assert torch.equal(x // 2, cell_x.expand_as(x).double())
    assert torch.equal((y1 - y2).abs() + (x1 - x2).abs(), torch.ones_like(y1))  # edge-adjacent


def test_all_eight_ordered_pairs_are_drawn_alike():
    assert len({tuple(p) for p in NEIGHBOUR_PAIRS.tolist()}) == 8
    choice = pair_choice(torch.zeros(4, 1, 128, 128), torch.Generator().manual_seed(1))
    counts = torch.bincount(choice.reshape(-1), minlength=8).double()
    assert counts.min() > 0.9 * counts.mean() and counts.max() < 1.1 * counts.mean()


def test_an_identity_network_pays_only_the_noise2noise_term():
    """f = identity: f(g1(y)) − g2(y) equals g1(f(y)) − g2(f(y)), so the regulariser is 0."""
    noisy = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    choice = pair_choice(noisy, torch.Generator().manual_seed(3))
    first, second = neighbour_subsample(noisy, choice)
    identity = torch.nn.Identity()
    expected = (first - second).square().mean()
    torch.testing.assert_close(neighbor2neighbor_loss(identity, noisy, choice, 2.0), expected)
    torch.testing.assert_close(noise2noise_term(identity, noisy, choice), expected)


def test_the_regulariser_weighs_in_and_its_pass_leaves_batchnorm_alone():
    net = UNet(UNetConfig(depth=1, base_channels=4))
    net.train()
    noisy = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    choice = pair_choice(noisy, torch.Generator().manual_seed(5))
    statistics = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    plain = neighbor2neighbor_loss(net, noisy, choice, 0.0)
    # the loss's gradient pass moves BatchNorm statistics once per call; the extra pass
    # on the whole crop (eval mode) does not: two calls move them as two plain passes do
    reference = UNet(UNetConfig(depth=1, base_channels=4))
    reference.load_state_dict({**net.state_dict(), **statistics})
    reference.train()
    reference(neighbour_subsample(noisy, choice)[0])
    for name, value in reference.state_dict().items():
        if "running" in name:
            torch.testing.assert_close(net.state_dict()[name], value)
    assert net.training
    weighted = neighbor2neighbor_loss(net, noisy, choice, 1.0)
    assert float(weighted.detach()) > float(plain.detach())
