"""The learned noise model: its lower-envelope fit, the posterior mean, and blind
prediction at inference."""

import numpy as np
import pytest
import torch

import semdenoise as sd
from semdenoise.models import posterior
from semdenoise.models.noise_model import (
    NoiseModel,
    ResidualProfile,
    fit_noise_model,
    fit_residual_profile,
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


def test_residual_profile_takes_vs_ranking_and_the_residuals_scale():
    # the head ranks pixels right but overstates their error by a factor that grows with v
    rng = np.random.default_rng(3)
    variance = np.exp(rng.uniform(np.log(0.05), np.log(2.0), 200_000))
    true_error = variance * (0.3 + 0.2 * variance)
    mean = rng.normal(size=variance.size)
    observed = mean + rng.normal(size=variance.size) * np.sqrt(true_error)
    profile = fit_residual_profile(variance, mean, observed, bins=32)
    assert len(profile.residuals) == 32
    assert np.all(np.diff(profile.log_variances) > 0)
    probe = np.array([0.1, 0.5, 1.5])
    np.testing.assert_allclose(profile.variance(probe), probe * (0.3 + 0.2 * probe), rtol=0.1)
    # flat beyond the measured range, and a round trip through the model file's dict
    ends = profile.variance(np.array([1e-4, 1e3]))
    np.testing.assert_allclose(ends, [profile.residuals[0], profile.residuals[-1]], rtol=1e-5)
    assert ResidualProfile.from_dict(profile.to_dict()) == profile


def test_the_exported_posterior_with_a_residual_profile_is_what_denoise_computes():
    rng = np.random.default_rng(4)
    observed, mean = rng.normal(size=(2, 1, 2, 16, 16)).astype(np.float32)
    raw = rng.normal(size=(1, 2, 16, 16)).astype(np.float32)
    profiles = [
        fit_residual_profile(
            np.exp(rng.normal(size=5000)), rng.normal(size=5000), rng.normal(size=5000)
        )
        for _ in range(2)
    ]
    size = max(len(p.residuals) for p in profiles)
    knots, levels = (
        torch.tensor(
            [list(p.table[i]) + [p.table[i][-1]] * (size - len(p.residuals)) for p in profiles]
        )
        for i in (0, 1)
    )
    predicted = torch.from_numpy(np.concatenate([mean, raw], axis=1))
    exported = posterior.posterior_denoised(
        torch.from_numpy(observed), predicted, 0.2, 0.0, residual=(knots, levels)
    ).numpy()
    for c, profile in enumerate(profiles):
        expected = posterior_mean(
            observed[0, c],
            mean[0, c],
            profile.variance(predicted_variance(raw[0, c])),
            np.float32(0.2),
        )
        np.testing.assert_allclose(exported[0, c], expected, atol=1e-6)


def test_an_exported_two_channel_posterior_pads_its_tables_and_matches_denoise():
    from semdenoise.export.network import ExportedNetwork
    from semdenoise.export.package import network_halo, posterior_kwargs
    from semdenoise.export.source import unet_kwargs
    from semdenoise.models.normalization import Normalization
    from semdenoise.models.trained import TrainedModel

    torch.manual_seed(0)
    config = sd.UNetConfig(depth=1, base_channels=4, in_channels=2, out_channels=4)
    net = UNet(config).eval()
    rng = np.random.default_rng(5)
    profiles = [  # a channel with fewer bins than the other
        fit_residual_profile(np.exp(rng.normal(size=4000)), *rng.normal(size=(2, 4000)), bins=n)
        for n in (8, 5)
    ]
    model = TrainedModel(
        kind="n2v",
        networks={"denoiser": net},
        normalization=Normalization((10.0, 20.0), (2.0, 4.0)),
        training={
            "masking": {"radius": 2},
            "noise_model": [NoiseModel("gaussian", 0.3).to_dict()] * 2,
            "residual_profile": [p.to_dict() for p in profiles],
        },
    )
    kwargs = posterior_kwargs(model, ["denoiser"])
    assert [len(row) for row in kwargs["residual_levels"]] == [8, 8]
    exported = ExportedNetwork(
        denoiser=unet_kwargs(config), halos={"denoiser": network_halo(config)}, posterior=kwargs
    )
    exported.load_state_dict({f"denoiser.{k}": v for k, v in net.state_dict().items()})
    exported.eval()
    image = rng.normal(15, 3, size=(2, 24, 24)).astype(np.float32)
    with torch.no_grad():
        normalized = model.normalization.normalize(image)
        packaged = exported(torch.from_numpy(normalized)[None])[0].numpy()
    expected = model.normalization.normalize(sd.denoise(model, image, axes="CYX"))
    np.testing.assert_allclose(packaged, expected, atol=1e-4)
