import numpy as np
import pytest
import torch

from semdenoise.config import PAPER_MASKING, MaskingConfig
from semdenoise.training.losses import n2v_loss
from semdenoise.training.masking import (
    grid_positions,
    mask_batch,
    neighbour_positions,
    window_medians,
)


def gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_paper_density_is_13x13_on_256_and_same_density_elsewhere():
    config = PAPER_MASKING
    assert MaskingConfig().grid_shape(250, 250) == (50, 50)  # the default: one in 25
    assert config.grid_shape(256, 256) == (13, 13)
    assert config.grid_shape(512, 512) == (26, 26)
    rows, cols = config.grid_shape(768, 1024)
    assert abs(rows * cols - 768 * 1024 / config.pixels_per_mask) / (rows * cols) < 0.05
    assert MaskingConfig(n_masked=100).grid_shape(256, 256) == (10, 10)


def test_grid_masks_exactly_one_pixel_per_cell():
    b, y, x = grid_positions(3, 100, 70, grid=(10, 7), generator=gen())
    assert len(b) == 3 * 10 * 7
    for image in range(3):
        sel = b == image
        cells = set(zip((y[sel] // 10).tolist(), (x[sel] // 10).tolist(), strict=True))
        assert len(cells) == 70  # every cell hit once: one position per cell


def test_grid_positions_spread_over_whole_cells():
    _, y, x = grid_positions(200, 40, 40, grid=(2, 2), generator=gen())
    assert y.min() == 0 and y.max() == 39 and x.min() == 0 and x.max() == 39


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_neighbour_is_never_the_pixel_itself_and_stays_in_window_and_image(radius):
    height, width = 9, 6
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    y = yy.reshape(-1).repeat(200)
    x = xx.reshape(-1).repeat(200)
    src_y, src_x = neighbour_positions((y, x), (height, width), radius=radius, generator=gen(1))
    assert not ((src_y == y) & (src_x == x)).any()
    assert ((src_y - y).abs() <= radius).all() and ((src_x - x).abs() <= radius).all()
    assert src_y.min() >= 0 and src_y.max() < height and src_x.min() >= 0 and src_x.max() < width
    # every other cell of an interior window is drawn
    interior = (y == 4) & (x == 3)
    offsets = set(zip((src_y[interior] - 4).tolist(), (src_x[interior] - 3).tolist(), strict=True))
    assert len(offsets) == (2 * radius + 1) ** 2 - 1 if radius < 3 else len(offsets) > 20


def test_masked_values_come_from_another_pixel_and_input_is_untouched():
    image = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 1, 64, 64)  # all distinct
    original = image.clone()
    masked, (b, y, x) = mask_batch(image, MaskingConfig(), generator=gen())
    assert torch.equal(image, original)
    assert (masked[b, 0, y, x] != image[b, 0, y, x]).all()
    unmasked = torch.ones_like(image, dtype=torch.bool)
    unmasked[b, 0, y, x] = False
    assert torch.equal(masked[unmasked], image[unmasked])


def test_median_replacement_excludes_the_centre():
    image = torch.zeros(1, 1, 7, 7)
    image[0, 0, 3, 3] = 1000.0  # the centre is an outlier; its window is otherwise 0..
    image[0, 0, 1:6, 1:6] += torch.arange(25, dtype=torch.float32).reshape(5, 5)
    median = window_medians(
        image, (torch.tensor([0]), torch.tensor([3]), torch.tensor([3])), radius=2
    )
    window = image[0, 0, 1:6, 1:6].reshape(-1)
    others = torch.cat([window[:12], window[13:]])
    assert median.item() == others.median().item()
    assert median.item() < 100


def test_patch_mode_masks_the_configured_fraction():
    config = MaskingConfig(mode="patch", patch_fraction=0.01)
    _, (b, y, x) = mask_batch(torch.randn(4, 1, 64, 64), config, generator=gen())
    assert len(b) == 4 * round(0.01 * 64 * 64)
    assert len(set(zip(b.tolist(), y.tolist(), x.tolist(), strict=True))) == len(b)


def test_loss_ignores_unmasked_pixels():
    noisy = torch.randn(2, 1, 32, 32)
    _, positions = mask_batch(noisy, MaskingConfig(n_masked=9), generator=gen())
    prediction = torch.randn(2, 1, 32, 32)
    loss = n2v_loss(prediction, noisy, positions)
    changed = prediction + 100.0
    b, y, x = positions
    changed[b, 0, y, x] = prediction[b, 0, y, x]
    assert torch.equal(n2v_loss(changed, noisy, positions), loss)
    expected = np.mean((prediction[b, 0, y, x] - noisy[b, 0, y, x]).numpy() ** 2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
