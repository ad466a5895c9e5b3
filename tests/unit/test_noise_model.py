"""The learned noise model: its lower-envelope fit, the posterior mean, and blind
prediction at inference."""

import numpy as np
import pytest
import torch

import semdenoise as sd
from semdenoise.models.noise_model import (
    NoiseModel,
    fit_noise_model,
    posterior_mean,
    predicted_variance,
)
from semdenoise.models.unet import UNet, without_variance_head
from semdenoise.predict.blind import blind_prediction, window_medians


def test_gaussian_envelope_is_a_low_quantile_of_the_predicted_variance():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=50_000)
    prior = rng.exponential(0.2, size=mean.size)  # context uncertainty, >= 0
    variance = 0.25 + prior
    fitted = fit_noise_model(mean, variance, "gaussian", quantile=0.02)
    assert fitted.kind == "gaussian" and fitted.slope == 0.0
    assert 0.25 < fitted.offset < 0.25 + 0.02  # just above the noise, never below it


def test_poisson_gaussian_envelope_recovers_a_signal_dependent_line():
    rng = np.random.default_rng(1)
    mean = rng.uniform(0, 4, size=80_000)
    variance = 0.1 + 0.3 * mean + rng.exponential(0.05, size=mean.size)
    fitted = fit_noise_model(mean, variance, "poisson-gaussian", quantile=0.02)
    assert fitted.slope == pytest.approx(0.3, abs=0.03)
    assert fitted.offset == pytest.approx(0.1, abs=0.05)
    # no trend in the data: no slope invented
    flat = fit_noise_model(mean, 0.2 + rng.exponential(0.05, mean.size), "poisson-gaussian")
    assert flat.slope < 0.01


def test_posterior_mean_weighs_the_observation_by_prior_and_noise_variance():
    observed, mean = np.array([2.0, 2.0, 2.0]), np.zeros(3)
    noise = np.full(3, 1.0)
    variance = np.array([1.0, 2.0, 0.5])  # no prior doubt / equal doubt / below the noise
    np.testing.assert_allclose(posterior_mean(observed, mean, variance, noise), [0.0, 1.0, 0.0])
    model = NoiseModel("poisson-gaussian", 0.1, 0.5)
    np.testing.assert_allclose(model.variance(np.array([0.0, 2.0, -5.0])), [0.1, 1.1, 1e-4])
    assert NoiseModel.from_dict(model.to_dict()) == model
    assert float(predicted_variance(np.array([-50.0]))[0]) > 0


def test_blind_prediction_never_sees_the_pixel_it_predicts():
    torch.manual_seed(0)
    net = UNet(sd.UNetConfig(depth=2, base_channels=4, out_channels=2)).eval()
    image = np.random.default_rng(2).normal(size=(40, 36)).astype(np.float32)
    before = blind_prediction(net, image, radius=2)
    assert before.shape == (2, 40, 36)
    changed = image.copy()
    changed[17, 9] += 50.0
    after = blind_prediction(net, changed, radius=2)
    np.testing.assert_allclose(after[:, 17, 9], before[:, 17, 9], rtol=1e-5, atol=1e-5)
    assert np.abs(after - before).max() > 1e-3  # its neighbours do see it


def test_window_medians_leave_the_centre_out():
    image = np.zeros((7, 7), np.float32)
    image[3, 3] = 100.0
    assert window_medians(image, 1)[3, 3] == 0.0
    image[2:5, 2:5] = 1.0
    image[3, 3] = 100.0
    assert window_medians(image, 1)[3, 3] == 1.0


def test_dropping_the_variance_head_keeps_the_mean():
    torch.manual_seed(0)
    net = UNet(sd.UNetConfig(depth=1, base_channels=4, out_channels=2)).eval()
    x = torch.randn(1, 1, 16, 16)
    mean = without_variance_head(net)
    assert mean.config.out_channels == 1 and not mean.training
    with torch.no_grad():
        torch.testing.assert_close(mean(x), net(x)[:, :1])
