"""The noise-level estimator behind ``denoise(noise_sigma="auto")``."""

import numpy as np
import pytest

from semdenoise.predict.noise_level import estimate_noise_sigma
from semdenoise.synth.mesoscopic import somata_image


@pytest.mark.parametrize("sigma", [2.0, 10.0, 40.0])
def test_recovers_the_sigma_of_gaussian_noise_on_structured_images(sigma):
    clean = somata_image((256, 256), rng=np.random.default_rng(0)).clean
    noisy = clean + np.random.default_rng(1).normal(0, sigma, clean.shape)
    assert estimate_noise_sigma(noisy) == pytest.approx(sigma, rel=0.08)


def test_a_linear_ramp_has_no_noise_and_bad_shapes_are_refused():
    ramp = np.add.outer(np.arange(32.0), 3 * np.arange(40.0))
    assert estimate_noise_sigma(ramp) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="2-D image"):
        estimate_noise_sigma(np.zeros((2, 8)))
