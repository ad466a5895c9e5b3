import copy
import csv

import lightning as L
import numpy as np
import pytest
import torch

import semdenoise as sd
from semdenoise.errors import InputError
from semdenoise.models.unet import blind_blur_kernel
from semdenoise.training.runner import checkpoint_dir_for

QUICK = sd.TrainConfig(steps=6, batch_size=2, val_fraction=0.0, checkpoint_every=2)


def weights(model: sd.TrainedModel) -> dict[str, torch.Tensor]:
    return model.denoiser.state_dict()


def test_training_writes_a_model_that_denoises_in_the_input_scale(tmp_path, noisy_stack, tiny_unet):
    _, noisy = noisy_stack
    out = tmp_path / "n2v.pt"
    model = sd.train_n2v(noisy, unet=tiny_unet, train=QUICK, out=out)
    assert out.is_file() and (checkpoint_dir_for(out) / "last.ckpt").is_file()
    assert model.training["steps"] == 6
    assert model.training["blind_spot_mse"] > 0
    assert model.normalization.mean == pytest.approx(float(noisy.mean()), rel=1e-4)
    denoised = sd.denoise(out, noisy)
    assert denoised.shape == noisy.shape and denoised.dtype == np.float32
    assert abs(float(denoised.mean()) - float(noisy.mean())) < 0.5 * float(noisy.std())


def test_n2v_learns_to_denoise(noisy_stack):
    clean, noisy = noisy_stack
    model = sd.train_n2v(
        noisy,
        unet=sd.UNetConfig(depth=2, base_channels=8),
        masking=sd.MaskingConfig(n_masked=64),
        train=sd.TrainConfig(steps=150, batch_size=3, learning_rate=2e-3, val_fraction=0.0),
    )
    before = np.mean((noisy - clean) ** 2)
    after = np.mean((sd.denoise(model, noisy) - clean) ** 2)
    assert after < 0.6 * before


def test_same_seed_same_weights_and_prediction(noisy_stack, tiny_unet):
    _, noisy = noisy_stack
    first = sd.train_n2v(noisy, unet=tiny_unet, train=QUICK)
    second = sd.train_n2v(noisy, unet=tiny_unet, train=QUICK)
    other = sd.train_n2v(noisy, unet=tiny_unet, train=QUICK.model_copy(update={"seed": 1}))
    for name, value in weights(first).items():
        assert torch.equal(value, weights(second)[name]), name
    assert any(not torch.equal(v, weights(other)[k]) for k, v in weights(first).items())
    np.testing.assert_array_equal(sd.denoise(first, noisy[0]), sd.denoise(second, noisy[0]))


def test_resume_continues_to_the_requested_steps_exactly_as_a_straight_run(
    tmp_path, noisy_stack, tiny_unet
):
    _, noisy = noisy_stack
    out = tmp_path / "n2v.pt"
    train = QUICK.model_copy(update={"lr_schedule": "constant"})
    sd.train_n2v(noisy, unet=tiny_unet, train=train.model_copy(update={"steps": 4}), out=out)
    resumed = sd.train_n2v(noisy, unet=tiny_unet, train=train, out=out, resume=True)
    straight = sd.train_n2v(noisy, unet=tiny_unet, train=train)
    assert resumed.training["steps"] == 6
    # weights, optimiser state, BatchNorm statistics and the sampling generator are all
    # restored, so the resumed run ends exactly where an uninterrupted one does
    for name, value in weights(straight).items():
        torch.testing.assert_close(weights(resumed)[name], value, rtol=1e-5, atol=1e-6)


def test_resume_without_checkpoint_is_an_error(tmp_path, noisy_stack, tiny_unet):
    with pytest.raises(InputError, match="no checkpoint found"):
        sd.train_n2v(
            noisy_stack[1], unet=tiny_unet, train=QUICK, out=tmp_path / "m.pt", resume=True
        )


class SteppedClock:
    """A clock that moves only when a training step ends: the test never races the real one."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_time_limit_stops_early_and_still_returns_a_model(noisy_stack, tiny_unet, monkeypatch):
    import types

    import semdenoise.training.runner as runner

    clock = SteppedClock()
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(monotonic=clock.monotonic))

    step_end = runner.TrainingModule.on_train_batch_end

    def ten_second_steps(module, *args) -> None:
        clock.now += 10.0  # every step "takes" ten seconds
        step_end(module, *args)

    monkeypatch.setattr(runner.TrainingModule, "on_train_batch_end", ten_second_steps)
    _, noisy = noisy_stack
    train = sd.TrainConfig(steps=100_000, max_minutes=1.0, val_fraction=0.0)
    model = sd.train_n2v(noisy, unet=tiny_unet, train=train)
    assert model.training["steps"] == 6  # 60 s of ten-second steps, then a complete model
    assert model.training["seconds"] == 60.0
    assert sd.denoise(model, noisy[0]).shape == noisy[0].shape


def lower_median_of_window(image: np.ndarray, y: int, x: int, radius: int) -> float:
    """The (2r+1)² window's median without its centre, in-image pixels only, computed
    here independently of the library (the lower middle value, as torch takes it)."""
    window = image[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1]
    centre = (y - max(0, y - radius)) * window.shape[1] + (x - max(0, x - radius))
    values = np.sort(np.delete(window.reshape(-1), centre))
    return float(values[(len(values) - 1) // 2])


@pytest.mark.parametrize(
    "masking",
    [
        sd.MaskingConfig(mode="patch", patch_size=32),
        sd.MaskingConfig(replacement="median"),
        sd.MaskingConfig(),
    ],
)
def test_patch_and_median_modes_are_what_training_masks_with(
    masking, noisy_stack, tiny_unet, monkeypatch
):
    import semdenoise.training.n2v as n2v

    seen = []

    def spy(image, config, *, generator):
        masked, positions = real(image, config, generator=generator)
        seen.append((image.clone(), masked.clone(), [p.clone() for p in positions]))
        return masked, positions

    real = n2v.mask_batch
    monkeypatch.setattr(n2v, "mask_batch", spy)
    model = sd.train_n2v(noisy_stack[1], unet=tiny_unet, masking=masking, train=QUICK)
    assert model.training["masking"]["mode"] == masking.mode and len(seen) == QUICK.steps
    radius = masking.radius
    medians = 0
    for image, masked, (b, y, x) in seen:
        if masking.mode == "patch":  # random 32x32 patches, ~0.2 % of them masked
            assert image.shape[2:] == (32, 32)
            assert len(b) == image.shape[0] * max(1, round(masking.patch_fraction * 32 * 32))
        else:  # full images, one pixel per grid cell
            assert tuple(image.shape[2:]) in ((48, 40), (40, 48))  # rotations augment
        for i in range(len(b)):
            plane = image[b[i], 0].numpy()
            value = float(masked[b[i], 0, y[i], x[i]])
            median = lower_median_of_window(plane, int(y[i]), int(x[i]), radius)
            medians += value == pytest.approx(median, abs=1e-6)
            if masking.replacement != "median":  # a copy of another pixel of the window
                window = plane[
                    max(0, y[i] - radius) : y[i] + radius + 1,
                    max(0, x[i] - radius) : x[i] + radius + 1,
                ]
                assert np.isclose(window, value, atol=0).sum() >= 1
    masked_pixels = sum(len(p[0]) for _, _, p in seen)
    if masking.replacement == "median":
        assert medians == masked_pixels  # every masked pixel holds its window's median
    else:
        assert medians < 0.5 * masked_pixels  # a random neighbour is rarely the median


def test_validation_split_by_image_reports_a_loss(noisy_stack, tiny_unet):
    train = sd.TrainConfig(steps=4, val_fraction=0.34, val_every=2)
    model = sd.train_n2v(noisy_stack[1], unet=tiny_unet, train=train)
    assert model.training["validation_images"] == 1
    assert np.isfinite(model.training["metrics"]["val_loss"])


def test_images_of_different_sizes_train_together(tiny_unet):
    rng = np.random.default_rng(0)
    images = [
        rng.normal(size=(32, 40)).astype(np.float32),
        rng.normal(size=(24, 24)).astype(np.float32),
    ]
    model = sd.train_n2v(images, unet=tiny_unet, train=QUICK)
    assert model.training["images"] == 2


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([np.ones((32, 32), np.float32)], r"images\[0\]: constant image"),
        ([np.zeros((4, 32), np.float32) + np.arange(32)], "smaller than the 8x8"),
        ([], "empty list"),
        ([np.zeros((2, 2, 16, 16), np.float32)], "4-D array"),
    ],
)
def test_bad_training_input_is_a_one_line_error(images, message, tiny_unet, tmp_path):
    with pytest.raises(InputError, match=message):
        sd.train_n2v(images, unet=tiny_unet, train=QUICK, out=tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_nan_loss_stops_with_the_step(noisy_stack, tiny_unet, monkeypatch):
    import semdenoise.training.n2v as n2v

    monkeypatch.setattr(n2v, "n2v_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(sd.TrainingError, match="became nan at step 0"):
        sd.train_n2v(noisy_stack[1], unet=tiny_unet, train=QUICK)


def test_a_learned_noise_model_is_stored_and_used_by_default(tmp_path, noisy_stack):
    clean, noisy = noisy_stack
    out = tmp_path / "n2v.pt"
    model = sd.train_n2v(
        noisy,
        unet=sd.UNetConfig(depth=2, base_channels=8),
        masking=sd.MaskingConfig(pixels_per_mask=16),
        train=sd.TrainConfig(steps=120, batch_size=3, learning_rate=2e-3, val_fraction=0.0),
        noise=sd.NoiseConfig(model="gaussian"),
        out=out,
    )
    assert model.denoiser.config.out_channels == 2
    fitted = model.training["noise_model"]
    std = float(model.normalization.std)
    # estimated from the training images' patches: the noise's variance (sigma 15)
    assert fitted["kind"] == "gaussian"
    assert fitted["offset"] == pytest.approx((15.0 / std) ** 2, rel=0.3)
    profile = model.training["residual_profile"]
    assert len(profile["log_variances"]) == len(profile["residuals"]) > 1
    assert model.training["noise_envelope"]["offset"] > 0
    loaded = sd.load_model(out)
    prior = sd.denoise(loaded, noisy, posterior=False)
    default = sd.denoise(loaded, noisy)
    np.testing.assert_array_equal(default, sd.denoise(model, noisy))
    assert not np.array_equal(prior, default)
    told = sd.denoise(loaded, noisy, noise_sigma=15.0)
    assert told.shape == noisy.shape and np.isfinite(told).all()
    for denoised in (prior, default, told):
        assert np.mean((denoised - clean) ** 2) < 0.7 * np.mean((noisy - clean) ** 2)
    # a told sigma is absolute, as the residual profile is: telling the estimated
    # sigma gives the default
    estimated = std * np.sqrt(fitted["offset"])
    np.testing.assert_allclose(sd.denoise(loaded, noisy, noise_sigma=estimated), default, atol=1e-3)
    # models from before the residual profile weigh by the head's v, their envelope as
    # the noise, and compare a told sigma with v on the scale of the blind-spot error:
    # the head's own scale (a calibration of 1) is another, and worse on this data
    older = copy.deepcopy(loaded)
    older.training["noise_model"] = older.training.pop("noise_envelope")
    del older.training["residual_profile"]
    assert not np.array_equal(sd.denoise(older, noisy), default)
    scale = model.training["variance_calibration"]
    assert 0 < scale < 1  # the head overstates the blind passes' error, as on real data
    told = sd.denoise(older, noisy, noise_sigma=15.0)
    uncalibrated = copy.deepcopy(older)
    uncalibrated.training["variance_calibration"] = 1.0
    np.testing.assert_allclose(
        sd.denoise(uncalibrated, noisy, noise_sigma=15.0 / np.sqrt(scale)), told, atol=1e-3
    )
    unscaled = sd.denoise(uncalibrated, noisy, noise_sigma=15.0)
    assert np.mean((told - clean) ** 2) < np.mean((unscaled - clean) ** 2)
    # joint training starts from its mean: the variance head is dropped
    joint = sd.train_joint(noisy, labels=(clean > 60).astype(np.uint8), init=loaded, train=QUICK)
    assert joint.denoiser.config.out_channels == 1


def test_noise_model_is_2d_only(noisy_stack):
    _, noisy = noisy_stack
    with pytest.raises(InputError, match="2-D only"):
        sd.train_n2v(
            noisy,
            unet=sd.UNetConfig(dims=3, depth=1, base_channels=4),
            train=QUICK,
            noise=sd.NoiseConfig(model="gaussian"),
        )


NEIGHBOURS = sd.MaskingConfig(objective="neighbor2neighbor")


def test_neighbor2neighbor_learns_to_denoise_in_one_pass(tmp_path, noisy_stack):
    clean, noisy = noisy_stack
    out = tmp_path / "nb2nb.pt"
    model = sd.train_n2v(
        noisy,
        unet=sd.UNetConfig(depth=2, base_channels=8),
        masking=NEIGHBOURS,
        train=sd.TrainConfig(steps=150, batch_size=3, learning_rate=2e-3, val_fraction=0.0),
        out=out,
    )
    # no variance head, no noise model, no blind-spot error: nothing to blend back
    assert model.denoiser.config.out_channels == 1
    assert model.training["noise"]["model"] == "none"
    assert "blind_spot_mse" not in model.training and "noise_model" not in model.training
    loaded = sd.load_model(out)
    assert loaded.training["masking"]["objective"] == "neighbor2neighbor"
    denoised = sd.denoise(loaded, noisy)
    np.testing.assert_array_equal(denoised, sd.denoise(model, noisy))
    assert np.mean((denoised - clean) ** 2) < 0.6 * np.mean((noisy - clean) ** 2)
    with pytest.raises(InputError, match="neighbor2neighbor, whose network sees every pixel"):
        sd.denoise(loaded, noisy, noise_sigma=15.0)


class StopAfter(L.Callback):
    """Ends a run after ``steps`` steps, as a Ctrl-C or a time limit would (a model and
    a checkpoint are written); the planned steps, and with them the schedules, stay."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True


def test_neighbor2neighbor_resumes_exactly_as_a_straight_run(tmp_path, noisy_stack, tiny_unet):
    """The generator, the learning rate and the regulariser's ramp all continue, and the
    loss log keeps the first run's rows (Lightning's logger would delete them)."""
    _, noisy = noisy_stack
    out = tmp_path / "nb2nb.pt"
    train = QUICK.model_copy(update={"crop_size": 32, "val_fraction": 0.34, "val_every": 2})
    run = {"unet": tiny_unet, "masking": NEIGHBOURS, "train": train}
    stopped = sd.train_n2v(noisy, **run, out=out, callbacks=[StopAfter(4)])
    assert stopped.training["steps"] == 4
    resumed = sd.train_n2v(noisy, **run, out=out, resume=True)
    straight = sd.train_n2v(noisy, **run)
    assert resumed.training["steps"] == 6
    with open(checkpoint_dir_for(out) / "logs" / "metrics.csv", newline="") as handle:
        validated = [int(r["step"]) for r in csv.DictReader(handle) if r.get("val_loss")]
    # after steps 2 and 4 (the first run, kept), then once more in the resumed run
    assert validated[:2] == [1, 3] and len(validated) == 3 and validated[2] > 3
    for name, value in weights(straight).items():
        torch.testing.assert_close(weights(resumed)[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("unet", "noise", "images", "message"),
    [
        (sd.UNetConfig(depth=2, base_channels=4), sd.NoiseConfig(model="gaussian"), None,
         "--noise-model gaussian needs the blind spot of --objective n2v"),
        (sd.UNetConfig(dims=3, depth=1, base_channels=4), None, None,
         "--objective neighbor2neighbor is 2-D only"),
        (sd.UNetConfig(depth=2, base_channels=4), None,
         np.random.default_rng(0).normal(size=(2, 12, 40)).astype(np.float32),
         "smaller than the 16x16"),  # half-size sub-images of at least 8x8
    ],
)  # fmt: skip
def test_neighbor2neighbor_refuses_what_it_cannot_train_in_one_line(
    noisy_stack, unet, noise, images, message
):
    images = noisy_stack[1] if images is None else images
    with pytest.raises(InputError, match=message):
        sd.train_n2v(images, unet=unet, masking=NEIGHBOURS, train=QUICK, noise=noise)


def test_joint_training_with_neighbor2neighbor(noisy_stack, tiny_unet):
    clean, noisy = noisy_stack
    labels = (clean > 60).astype(np.uint8)
    train = sd.TrainConfig(steps=8, batch_size=2, val_fraction=0.34, val_every=4)
    model = sd.train_joint(noisy, labels=labels, unet=tiny_unet, masking=NEIGHBOURS, train=train)
    assert model.training["masking"]["objective"] == "neighbor2neighbor"
    assert "blind_spot_mse" not in model.training
    assert np.isfinite(model.training["metrics"]["val_n2v"])
    assert sd.denoise(model, noisy).shape == noisy.shape
    assert sd.segment(model, noisy).shape == noisy.shape


def test_a_blind_filter_trains_is_saved_and_stays_out_of_segmenters(tmp_path, noisy_stack):
    clean, noisy = noisy_stack
    unet = sd.UNetConfig(depth=2, base_channels=4, blind_filter=2)
    model = sd.train_n2v(noisy, unet=unet, train=QUICK, out=tmp_path / "n2v.pt")
    net = model.denoiser
    assert net.config.blind_filter == 2 and net.blind_kernel.shape == (1, 1, 5, 5)
    assert not torch.equal(net.blind_kernel.detach(), blind_blur_kernel(1, 2, 2))  # it learned
    reloaded = sd.load_model(tmp_path / "n2v.pt")
    assert np.array_equal(sd.denoise(reloaded, noisy[0]), sd.denoise(model, noisy[0]))
    labels = (clean > 60).astype(np.uint8)
    joint = sd.train_joint(noisy, labels=labels, unet=unet, train=QUICK)
    assert joint.denoiser.config.blind_filter == 2 and hasattr(joint.denoiser, "blind_kernel")
    segmenter = joint.networks["segmenter"]
    assert segmenter.config.blind_filter == 0 and not hasattr(segmenter, "blind_kernel")


def test_an_unset_blind_filter_is_the_training_modes_default(noisy_stack):
    """Unset, the blind-spot blur is N2V's default radius and off in joint training
    (where it cost the segmentation); a radius the user sets is kept (above)."""
    from semdenoise.config import MODE_BLIND_FILTER

    clean, noisy = noisy_stack
    unet = sd.UNetConfig(depth=2, base_channels=4)
    assert unet.blind_filter is None and MODE_BLIND_FILTER == {"n2v": 3, "joint": 0}
    n2v = sd.train_n2v(noisy, unet=unet, train=QUICK).denoiser
    assert n2v.config.blind_filter == 3 and hasattr(n2v, "blind_kernel")
    labels = (clean > 60).astype(np.uint8)
    joint = sd.train_joint(noisy, labels=labels, unet=unet, train=QUICK).denoiser
    assert joint.config.blind_filter == 0 and not hasattr(joint, "blind_kernel")
