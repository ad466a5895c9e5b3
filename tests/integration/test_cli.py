"""The command-line contract of DESIGN.md, run in-process through the real entry point."""

import numpy as np
import pytest
import tifffile
import torch

TINY = [
    "--steps",
    "3",
    "--depth",
    "1",
    "--base-channels",
    "4",
    "--val-fraction",
    "0",
    "--no-progress",
    "--checkpoint-every",
    "2",
]


@pytest.fixture
def stack_file(tmp_path, noisy_stack):
    path = tmp_path / "noisy.tif"
    tifffile.imwrite(path, noisy_stack[1].astype(np.uint16), photometric="minisblack")
    return path


def test_train_then_denoise(cli, tmp_path, stack_file):
    model = tmp_path / "n2v.pt"
    code, out, err = cli("train", "n2v", str(stack_file), "--out", str(model), *TINY)
    assert code == 0, err
    assert "wrote" in out and model.is_file()
    code, out, err = cli(
        "train",
        "n2v",
        str(stack_file),
        "--out",
        str(model),
        *TINY[:0],
        "--steps",
        "5",
        "--depth",
        "1",
        "--base-channels",
        "4",
        "--val-fraction",
        "0",
        "--no-progress",
        "--resume",
    )
    assert code == 0, err
    assert torch.load(model, weights_only=True)["training"]["steps"] == 5
    for suffix in (".tif", ".npy", ".zarr"):
        target = tmp_path / f"denoised{suffix}"
        code, _, err = cli("denoise", str(model), str(stack_file), str(target))
        assert code == 0, err
    denoised = tifffile.imread(tmp_path / "denoised.tif")
    assert denoised.shape == (3, 48, 40) and denoised.dtype == np.float32
    for sigma in ("auto", "4.5"):
        target = tmp_path / f"blended-{sigma}.tif"
        code, _, err = cli("denoise", str(model), str(stack_file), str(target),
            "--noise-sigma", sigma,
        )  # fmt: skip
        assert code == 0, err
        assert tifffile.imread(target).shape == denoised.shape
    code, _, err = cli("denoise", str(model), str(stack_file), str(tmp_path / "x.tif"),
        "--noise-sigma", "loud",
    )  # fmt: skip
    assert code == 2 and err.startswith("error: noise sigma must be a number")
    assert not (tmp_path / "x.tif").exists()


def test_patch_masking_flag(cli, tmp_path, stack_file):
    model = tmp_path / "p.pt"
    code, _, err = cli(
        "train",
        "n2v",
        str(stack_file),
        "--out",
        str(model),
        *TINY,
        "--masking",
        "patch",
    )
    assert code == 0, err
    assert torch.load(model, weights_only=True)["training"]["masking"]["mode"] == "patch"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.save(p / "x.npy", np.zeros((2, 2, 9, 9), np.float32)), "4-D array"),
        (lambda p: np.save(p / "x.npy", np.full((16, 16), np.nan, np.float32)), "NaN/inf"),
        (lambda p: (p / "x.npy").write_text("not numpy"), "cannot read as .npy"),
        (lambda p: np.save(p / "x.npy", np.full((16, 16), 3, np.float32)), "constant image"),
        (lambda p: np.save(p / "x.npy", np.random.rand(4, 4)), "smaller than"),
    ],
)
def test_train_bad_input_is_one_line_exit_2(cli, tmp_path, make, message):
    make(tmp_path)
    code, _, err = cli(
        "train",
        "n2v",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "m.pt"),
        *TINY,
    )
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "m.pt").exists()


def test_empty_folder_and_bad_option(cli, tmp_path):
    code, _, err = cli("train", "n2v", str(tmp_path), "--out", str(tmp_path / "m.pt"))
    assert code == 2 and "holds no image files" in err
    (tmp_path / "a.npy").write_bytes(b"")
    np.save(tmp_path / "a.npy", np.random.rand(16, 16))
    code, _, err = cli(
        "train",
        "n2v",
        str(tmp_path),
        "--out",
        str(tmp_path / "m.pt"),
        "--masking",
        "diagonal",
    )
    assert code == 2 and err.startswith("error: masking options: mode")


def test_denoise_errors(cli, tmp_path, stack_file):
    (tmp_path / "foreign.pt").write_text("nope")
    code, _, err = cli(
        "denoise",
        str(tmp_path / "foreign.pt"),
        str(stack_file),
        str(tmp_path / "o.tif"),
    )
    assert code == 2 and "foreign.pt" in err and err.startswith("error: ")
    before = stack_file.read_bytes()
    code, _, err = cli(
        "denoise",
        str(tmp_path / "foreign.pt"),
        str(stack_file),
        str(stack_file),
    )
    assert code == 2 and "overwrite an input" in err
    assert stack_file.read_bytes() == before
    assert not (tmp_path / "o.tif").exists()


def test_seg_joint_and_segment_commands(cli, tmp_path, stack_file, noisy_stack):
    clean, _ = noisy_stack
    labels = tmp_path / "masks.tif"
    tifffile.imwrite(
        labels, (clean > np.percentile(clean, 80)).astype(np.uint8), photometric="minisblack"
    )
    small = [
        "--steps",
        "3",
        "--depth",
        "1",
        "--base-channels",
        "4",
        "--val-fraction",
        "0",
        "--no-progress",
    ]
    seg, joint = tmp_path / "seg.pt", tmp_path / "joint.pt"
    code, _, err = cli(
        "train",
        "seg",
        str(stack_file),
        "--labels",
        str(labels),
        "--out",
        str(seg),
        "--loss",
        "mse",
        *small,
    )
    assert code == 0, err
    code, _, err = cli(
        "train",
        "joint",
        str(stack_file),
        "--labels",
        str(labels),
        "--out",
        str(joint),
        *small,
    )
    assert code == 0, err
    code, _, err = cli(
        "train",
        "joint",
        str(stack_file),
        "--style-segmenter",
        str(seg),
        "--out",
        str(tmp_path / "u.pt"),
        *small,
    )
    assert code == 0, err
    assert torch.load(tmp_path / "u.pt", weights_only=True)["training"]["mode"] == "unsupervised"
    code, _, err = cli("segment", str(joint), str(stack_file), str(tmp_path / "mask.tif"))
    assert code == 0, err
    assert tifffile.imread(tmp_path / "mask.tif").dtype == np.uint8
    code, _, err = cli("denoise", str(joint), str(stack_file), str(tmp_path / "d.npy"))
    assert code == 0, err
    code, _, err = cli(
        "train",
        "joint",
        str(stack_file),
        "--style-segmenter",
        str(joint.with_name("missing.pt")),
        "--out",
        str(tmp_path / "x.pt"),
        *small,
    )
    assert code == 2 and "missing.pt" in err
    code, _, err = cli(
        "train",
        "seg",
        str(stack_file),
        "--labels",
        str(stack_file.with_name("absent.tif")),
        "--out",
        str(tmp_path / "y.pt"),
        *small,
    )
    assert code == 2 and "absent.tif: no such file" in err
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


def test_synth_then_evaluate_through_the_cli(cli, tmp_path):
    data = tmp_path / "plaques"
    code, out, err = cli(
        "synth",
        "plaques",
        str(data),
        "--n",
        "2",
        "--size",
        "48",
        "--seed",
        "1",
    )
    assert code == 0, err
    assert {p.name for p in data.iterdir()} == {
        "clean.tif",
        "noisy.tif",
        "masks.tif",
        "instances.tif",
        "meta.json",
    }
    assert tifffile.imread(data / "noisy.tif").shape == (2, 48, 48)
    report = tmp_path / "report"
    code, out, err = cli(
        "evaluate",
        "--noisy",
        str(data / "noisy.tif"),
        "--clean",
        str(data / "clean.tif"),
        "--labels",
        str(data / "masks.tif"),
        "--instances",
        str(data / "instances.tif"),
        "--baselines",
        "gaussian",
        "--out",
        str(report),
    )
    assert code == 0, err
    text = (report / "report.md").read_text()
    assert "| gaussian |" in text and "| noisy |" in text and "F1" in text


def test_evaluate_refuses_bad_input_in_one_line(cli, tmp_path):
    noisy = tmp_path / "noisy.tif"
    tifffile.imwrite(noisy, np.zeros((2, 32, 32), np.float32))
    tifffile.imwrite(tmp_path / "labels.tif", np.zeros((2, 32, 30), np.uint8))
    cases = [
        (["--labels", str(tmp_path / "labels.tif"), "--baselines", "tv"], "do not match"),
        (["--baselines", "wiener"], "unknown baseline"),
        (["--method", "n2v"], "NAME=MODEL.pt"),
        (["--method", f"n2v={noisy}"], "model file"),
        ([], "nothing to evaluate"),
    ]
    for extra, message in cases:
        code, out, err = cli(
            "evaluate",
            "--noisy",
            str(noisy),
            "--out",
            str(tmp_path / "report"),
            *extra,
        )
        assert code == 2, (extra, err)
        assert err.startswith("error:") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "report").exists()


def test_cli_trains_a_noise_model_and_denoise_uses_it(cli, tmp_path, stack_file):
    model = tmp_path / "m.pt"
    code, _, err = cli(
        "train", "n2v", str(stack_file), "--out", str(model), *TINY,
        "--noise-model", "poisson-gaussian",
    )  # fmt: skip
    assert code == 0, err
    assert "model: poisson-gaussian" in (tmp_path / "m.pt.yaml").read_text()
    for extra in ([], ["--no-posterior"]):
        out = tmp_path / f"out{len(extra)}.tif"
        code, _, err = cli("denoise", str(model), str(stack_file), str(out), *extra)
        assert code == 0, err
    posterior = tifffile.imread(tmp_path / "out0.tif")
    prior = tifffile.imread(tmp_path / "out1.tif")
    assert posterior.shape == tifffile.imread(stack_file).shape
    assert not np.array_equal(posterior, prior)


def test_cli_trains_with_neighbor2neighbor_and_denoise_refuses_a_sigma(cli, tmp_path, stack_file):
    model = tmp_path / "m.pt"
    code, _, err = cli(
        "train", "n2v", str(stack_file), "--out", str(model), *TINY,
        "--objective", "neighbor2neighbor",
    )  # fmt: skip
    assert code == 0, err
    assert "objective: neighbor2neighbor" in (tmp_path / "m.pt.yaml").read_text()
    out = tmp_path / "out.tif"
    code, _, err = cli("denoise", str(model), str(stack_file), str(out))
    assert code == 0, err
    assert tifffile.imread(out).shape == tifffile.imread(stack_file).shape
    refused = tmp_path / "refused.tif"
    code, _, err = cli("denoise", str(model), str(stack_file), str(refused), "--noise-sigma", "9")
    assert code == 2 and err.count("\n") == 1 and "sees every pixel" in err, err
    assert not refused.exists()
    code, _, err = cli(
        "train", "n2v", str(stack_file), "--out", str(tmp_path / "g.pt"), *TINY,
        "--objective", "neighbor2neighbor", "--noise-model", "gaussian",
    )  # fmt: skip
    assert code == 2 and "needs the blind spot of --objective n2v" in err, err
