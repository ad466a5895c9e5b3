"""3-D Noise2Void end to end: training on volumes, 3-D tiled denoising, the CLI, the
errors a user can cause, and the light-sheet volume of ``../shared/data``."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import semdenoise as sd
from semdenoise.errors import InputError
from semdenoise.training.losses import n2v_loss
from semdenoise.training.masking import mask_batch

LIGHTSHEET = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "trailmap_lightsheet_axons"
    / "volume.tif"
)
TINY_3D = sd.UNetConfig(dims=3, depth=2, base_channels=4, xy_only_levels=1)
QUICK_3D = sd.TrainConfig(steps=4, crop_depth=6, crop_size=24, checkpoint_every=2)


def blob_volume(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy): smooth bright blobs on a gradient, Gaussian noise sigma 15."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    clean = 20.0 + 10.0 * xx / shape[2]
    for _ in range(8):
        centre = rng.uniform(0, shape)
        clean = clean + 100.0 * np.exp(
            -((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) / 18.0
        )
    noisy = clean + rng.normal(0, 15, shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


def test_3d_training_writes_a_model_that_denoises_a_volume(tmp_path):
    _, noisy = blob_volume((10, 30, 26))
    out = tmp_path / "n2v3d.pt"
    model = sd.train_n2v(noisy, unet=TINY_3D, train=QUICK_3D, out=out)
    assert model.training["steps"] == 4 and model.training["validation_images"] == 1
    assert model.training["blind_spot_mse"] > 0
    loaded = sd.load_model(out)
    assert loaded.denoiser.config == model.denoiser.config == TINY_3D.with_blind_filter(3)
    denoised = sd.denoise(loaded, noisy)
    assert denoised.shape == noisy.shape and denoised.dtype == np.float32
    assert np.isfinite(denoised).all()
    np.testing.assert_allclose(denoised, sd.denoise(model, noisy, tile_size=16), atol=1e-3)
    assert sd.denoise(model, noisy, noise_sigma=15.0).shape == noisy.shape


def test_3d_resume_ends_where_a_straight_run_does(tmp_path):
    _, noisy = blob_volume((8, 24, 24))
    train = QUICK_3D.model_copy(update={"lr_schedule": "constant", "val_fraction": 0.0})
    out = tmp_path / "m.pt"
    sd.train_n2v(noisy, unet=TINY_3D, train=train.model_copy(update={"steps": 2}), out=out)
    resumed = sd.train_n2v(noisy, unet=TINY_3D, train=train, out=out, resume=True)
    straight = sd.train_n2v(noisy, unet=TINY_3D, train=train)
    for name, value in straight.denoiser.state_dict().items():
        np.testing.assert_allclose(
            resumed.denoiser.state_dict()[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-6
        )


def test_a_list_of_volumes_holds_out_whole_volumes():
    volumes = [blob_volume((6, 20, 20), seed)[1] for seed in range(3)]
    train = QUICK_3D.model_copy(update={"steps": 1, "val_fraction": 0.34})
    model = sd.train_n2v(volumes, unet=TINY_3D, train=train)
    assert model.training["images"] == 3 and model.training["validation_images"] == 1


@pytest.mark.parametrize(
    ("images", "unet", "options", "message"),
    [
        (np.random.rand(32, 32), TINY_3D, {}, "2-D image of shape"),
        (np.random.rand(2, 32, 32), TINY_3D, {}, r"smaller than the 3x8x8.*--xy-only-levels"),
        (np.random.rand(8, 32, 6), TINY_3D, {}, "smaller than"),
        (np.random.rand(3, 32, 32), sd.UNetConfig(dims=3, depth=2), {}, "smaller than the 4x"),
        (np.random.rand(8, 32, 32), TINY_3D, {"masking": "patch"}, "patch is 2-D only"),
        (np.random.rand(8, 32, 32), TINY_3D, {"crop_size": 8, "crop_depth": 2}, "training crop"),
        (np.full((8, 32, 32), 3.0), TINY_3D, {}, "constant image"),
    ],
)
def test_bad_3d_training_input_is_a_one_line_error(images, unet, options, message):
    masking = sd.MaskingConfig(mode=options.pop("masking", "grid"))
    train = QUICK_3D.model_copy(update=options)
    with pytest.raises(InputError, match=message) as error:
        sd.train_n2v(images, unet=unet, masking=masking, train=train)
    assert "\n" not in str(error.value)


def test_3d_model_refuses_2d_images_and_a_2d_joint_run():
    _, noisy = blob_volume((6, 20, 20))
    model = sd.train_n2v(noisy, unet=TINY_3D, train=QUICK_3D.model_copy(update={"steps": 1}))
    with pytest.raises(InputError, match=r"needs a \(Z, Y, X\) volume"):
        sd.denoise(model, noisy[0])
    labels = (noisy > noisy.mean()).astype(np.uint8)
    # 3-D seg and joint training: tests/integration/test_seg_joint_3d.py
    with pytest.raises(InputError, match="init: a 3-D denoiser; train with --dims 3"):
        sd.train_joint(noisy, labels=labels, init=model)


def test_cli_trains_and_denoises_a_volume(cli, tmp_path):
    _, noisy = blob_volume((8, 24, 24))
    volume, flat = tmp_path / "volume.tif", tmp_path / "flat.npy"
    tifffile.imwrite(volume, noisy.astype(np.uint16), photometric="minisblack")
    np.save(flat, noisy[0])
    model = tmp_path / "n2v3d.pt"
    tiny = ["--steps", "2", "--depth", "1", "--base-channels", "4", "--no-progress"]
    code, out, err = cli("train", "n2v", str(volume), "--out", str(model), "--dims", "3",
        "--crop-depth", "4", "--crop-size", "16", *tiny,
    )  # fmt: skip
    assert code == 0, err
    code, out, err = cli("denoise", str(model), str(volume), str(tmp_path / "d.tif"))
    assert code == 0, err
    assert tifffile.imread(tmp_path / "d.tif").shape == noisy.shape
    x_pt = str(tmp_path / "x.pt")
    for args, message in [
        (["train", "n2v", str(flat), "--out", x_pt, "--dims", "3", *tiny], "2-D image"),
        (["train", "n2v", str(volume), "--out", x_pt, "--dims", "4", *tiny], "dims"),
        (["train", "joint", str(volume), "--labels", str(volume), "--init", str(model),
          "--out", str(tmp_path / "j.pt"), *tiny], "a 3-D denoiser; train with --dims 3"),
        (["denoise", str(model), str(flat), str(tmp_path / "d2.tif")], "needs a (Z, Y, X) volume"),
    ]:  # fmt: skip
        code, _, err = cli(*args)
        assert code == 2 and err.startswith("error: ") and message in err, err
        assert err.count("\n") == 1
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "j.pt").exists()


def blind_spot_error(model: sd.TrainedModel, noisy: np.ndarray) -> float:
    """The N2V loss of a model on the noisy volume, one fixed grid mask, in eval mode."""
    volume = torch.from_numpy(model.normalization.normalize(noisy))[None, None]
    generator = torch.Generator()
    generator.manual_seed(1)
    masked, positions = mask_batch(volume, sd.MaskingConfig(), generator=generator)
    with torch.no_grad():
        return float(n2v_loss(model.denoiser.eval()(masked), volume, positions))


@pytest.mark.skipif(not LIGHTSHEET.is_file(), reason="../shared/data light-sheet volume absent")
def test_lightsheet_volume_trains_and_denoises():
    """A few steps of a tiny 3-D model on the real light-sheet volume with added noise:
    same shape, finite, and a lower blind-spot error than the model it started from."""
    clean = tifffile.imread(LIGHTSHEET).astype(np.float32)[:, :64, :64]
    noisy = (clean + np.random.default_rng(0).normal(0, 300, clean.shape)).astype(np.float32)
    # ~30 s: fewer steps still lower the loss on the crops they see, but not yet on the
    # whole volume (its bright, saturated regions dominate the error)
    train = sd.TrainConfig(
        steps=150, crop_depth=16, crop_size=48, learning_rate=1e-3, val_fraction=0.0
    )
    model = sd.train_n2v(noisy, unet=TINY_3D, train=train)
    start = sd.train_n2v(noisy, unet=TINY_3D, train=train.model_copy(update={"steps": 1}))
    denoised = sd.denoise(model, noisy)
    assert denoised.shape == clean.shape and np.isfinite(denoised).all()
    assert blind_spot_error(model, noisy) < blind_spot_error(start, noisy)
