"""models/posterior.py, the torch code that both ``denoise`` and exported packages run:
its medians are NumPy's, and tiles of an image give the whole image's blind-spot
prediction once they hold the receptive radius plus the masking radius of context."""

import numpy as np
import torch
import torch.nn.functional as F

from semdenoise.models.posterior import blind_spot_prediction, window_medians


def test_window_medians_are_numpys_median_without_the_centre():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 3, 9, 11)).astype(np.float32)
    radius = 2
    padded = np.pad(image, [(0, 0), (0, 0), (radius, radius), (radius, radius)], mode="reflect")
    shifts = [
        padded[..., dy : dy + 9, dx : dx + 11]
        for dy in range(2 * radius + 1)
        for dx in range(2 * radius + 1)
        if (dy, dx) != (radius, radius)
    ]
    expected = np.median(np.stack(shifts), axis=0)  # 24 values: mean of the middle two
    medians = window_medians(torch.from_numpy(image), radius).numpy()
    np.testing.assert_allclose(medians, expected, rtol=0, atol=1e-6)


def test_a_tile_gives_the_whole_images_blind_prediction_inside_its_halo():
    torch.manual_seed(0)
    weight = torch.randn(2, 1, 5, 5)  # receptive radius 2, two outputs

    def predict(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(image, [2] * 4, mode="reflect"), weight)

    image = torch.randn(1, 1, 40, 44)
    radius = 1
    whole = blind_spot_prediction(predict, image, radius=radius)
    # a tile starting off the pass grid: which pixels are masked together stays the same
    tile = blind_spot_prediction(predict, image[..., 7:33, 13:39], radius=radius)
    halo = 2 + radius
    inside = (..., slice(halo, -halo), slice(halo, -halo))
    torch.testing.assert_close(tile[inside], whole[..., 7:33, 13:39][inside])
    # with less context than that, the tile's edges differ
    assert not torch.allclose(tile[..., 2, :], whole[..., 9, 13:39])
