"""--axes through the command line: multi-channel images trained on, denoised and
segmented, results in the input's own axes."""

import numpy as np
import pytest
import tifffile
import torch

TINY = ["--steps", "3", "--depth", "1", "--base-channels", "4", "--val-fraction", "0"]
TINY += ["--no-progress"]


def train(cli, mode, image, model, *options):
    """``semdenoise train MODE IMAGE --axes CYX --out MODEL`` with tiny settings."""
    code, _, err = cli(
        "train", mode, str(image), "--axes", "CYX", "--out", str(model), *options, *TINY
    )
    assert code == 0, err


@pytest.fixture
def two_channel(tmp_path):
    """A (C=2, Y, X) TIFF: the same blobs in both channels at different brightness, and
    its mask."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:48, :40]
    clean = 20.0 + 100.0 * (
        ((yy - 20) ** 2 + (xx - 15) ** 2 < 80) | ((yy - 35) ** 2 + (xx - 30) ** 2 < 40)
    )
    image = np.stack([clean, 0.1 * clean + 500.0])
    noisy = image + rng.normal(0, [[[10.0]], [[2.0]]], image.shape)
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, noisy.astype(np.float32), photometric="minisblack")
    mask = tmp_path / "two_mask.tif"
    tifffile.imwrite(mask, (clean > 60).astype(np.uint8), photometric="minisblack")
    return path, mask


@pytest.mark.parametrize("channels", ["together", "separate"])
def test_a_two_channel_image_denoises_with_axes_cyx(cli, tmp_path, two_channel, channels):
    image, _ = two_channel
    model = tmp_path / "m.pt"
    train(cli, "n2v", image, model, "--channels", channels)
    stored = torch.load(model, weights_only=True)
    assert stored["training"]["axes"] == "CYX"
    assert len(stored["normalization"]["mean"]) == 2  # statistics per channel
    assert len(stored["training"]["noise_model"]) == 2  # a noise model per channel
    out = tmp_path / "out.tif"
    code, stdout, err = cli("denoise", str(model), str(image), str(out), "--axes", "CYX")
    assert code == 0, err
    denoised = tifffile.imread(out)
    assert denoised.shape == (2, 48, 40) and np.isfinite(denoised).all()
    # each channel stays in its own intensity range
    assert abs(denoised[1].mean() - 500.0 - 0.1 * denoised[0].mean()) < 20
    again = tmp_path / "again.tif"
    code, _, err = cli("denoise", str(model), str(image), str(again))  # axes from the model
    assert code == 0, err
    np.testing.assert_array_equal(tifffile.imread(again), denoised)


def test_channels_last_and_stacks_of_channel_images(cli, tmp_path, two_channel):
    image, _ = two_channel
    model = tmp_path / "m.pt"
    train(cli, "n2v", image, model)
    stack = np.stack([tifffile.imread(image)] * 3)  # S, C, Y, X
    moved = tmp_path / "yxcs.tif"
    tifffile.imwrite(moved, np.transpose(stack, (2, 3, 1, 0)), photometric="minisblack")
    out = tmp_path / "out.tif"
    code, _, err = cli("denoise", str(model), str(moved), str(out), "--axes", "YXCS")
    assert code == 0, err
    assert tifffile.imread(out).shape == (48, 40, 2, 3)


def test_a_segmenter_and_a_joint_model_take_channels(cli, tmp_path, two_channel):
    image, mask = two_channel
    seg = tmp_path / "seg.pt"
    train(cli, "seg", image, seg, "--labels", str(mask))
    out = tmp_path / "mask.tif"
    code, _, err = cli("segment", str(seg), str(image), str(out), "--axes", "CYX")
    assert code == 0, err
    assert tifffile.imread(out).shape == (48, 40)
    joint = tmp_path / "joint.pt"
    train(cli, "joint", image, joint, "--labels", str(mask))
    assert cli("segment", str(joint), str(image), str(out), "--axes", "CYX")[0] == 0
    assert tifffile.imread(out).shape == (48, 40)
    denoised = tmp_path / "joint_denoised.tif"
    assert cli("denoise", str(joint), str(image), str(denoised), "--axes", "CYX")[0] == 0
    assert tifffile.imread(denoised).shape == (2, 48, 40)


def test_axes_that_do_not_fit_the_file_are_one_line_errors(cli, tmp_path, two_channel):
    image, _ = two_channel
    model = tmp_path / "m.pt"
    code, _, err = cli("train", "n2v", str(image), "--axes", "SCYX", "--out", str(model), *TINY)
    assert code == 2
    assert err.strip() == (
        f"error: {image}: 3-D array of shape (2, 48, 40) does not match axes 'SCYX' (4 letters)"
    )
    assert not model.exists()
    train(cli, "n2v", image, model)
    code, _, err = cli("denoise", str(model), str(image), str(tmp_path / "o.tif"), "--axes", "SYX")
    assert code == 2
    assert err.strip() == (f"error: {image}: 1 channel(s) (axes SYX), this model takes 2")


def test_check_and_evaluate_take_one_channel_layouts(cli, tmp_path, noisy_stack):
    clean, noisy = noisy_stack  # S, Y, X
    moved = {}
    for name, stack in (("clean", clean), ("noisy", noisy)):
        moved[name] = tmp_path / f"{name}_yxs.tif"
        tifffile.imwrite(moved[name], np.moveaxis(stack, 0, -1), photometric="minisblack")
    model = tmp_path / "m.pt"
    code, _, err = cli(
        "train",
        "n2v",
        str(moved["noisy"]),
        "--axes",
        "YXS",
        "--out",
        str(model),
        "--noise-model",
        "none",
        *TINY,
    )
    assert code == 0, err
    code, out, err = cli("check", str(model), str(moved["noisy"]), "--axes", "YXS")
    assert code == 0, err
    assert out.count(f"{moved['noisy']}[") == 3  # one row per image
    code, out, err = cli(
        "evaluate",
        "--noisy",
        str(moved["noisy"]),
        "--clean",
        str(moved["clean"]),
        "--method",
        f"n2v={model}",
        "--baselines",
        "gaussian",
        "--axes",
        "YXS",
        "--out",
        str(tmp_path / "report"),
    )
    assert code == 0, err
    assert (tmp_path / "report" / "report.md").is_file()
    code, _, err = cli(
        "evaluate",
        "--noisy",
        str(moved["noisy"]),
        "--baselines",
        "gaussian",
        "--axes",
        "CYX",
        "--out",
        str(tmp_path / "report2"),
    )
    assert code == 2
    assert "evaluate scores one-channel images" in err and "\n" not in err.strip()
