"""`evaluate` and `reproduce` treat every method by the same rules and refuse, before any
work, what they could not finish."""

import json
import sys

import numpy as np
import pytest
import tifffile

import semdenoise as sd
from semdenoise.evaluation.metrics import psnr

QUICK = sd.TrainConfig(steps=4, batch_size=2, val_fraction=0.0)


@pytest.fixture
def files(tmp_path, noisy_stack, tiny_unet):
    clean, noisy = noisy_stack
    tifffile.imwrite(tmp_path / "clean.tif", clean, photometric="minisblack")
    tifffile.imwrite(tmp_path / "noisy.tif", noisy, photometric="minisblack")
    model = sd.train_n2v(noisy, unet=tiny_unet, train=QUICK, out=tmp_path / "n2v.pt")
    return tmp_path, clean, noisy, model


@pytest.fixture
def no_training(monkeypatch):
    """Any training started by the command fails the test loudly."""
    import semdenoise.training as training

    def refuse(*args, **kwargs):
        raise AssertionError("trained a model before refusing")

    for name in ("train_n2v", "train_seg", "train_joint"):
        monkeypatch.setattr(training, name, refuse)
    import semdenoise.experiments.plaques as plaques

    for name in ("train_n2v", "train_seg", "train_joint"):
        monkeypatch.setattr(plaques, name, refuse)


def test_noise_sigma_reaches_every_learned_method_and_the_report_says_so(cli, files):
    folder, clean, noisy, model = files
    sigma = round(float(np.sqrt(model.training["blind_spot_mse"] / 2)), 3)  # blend weight 1/2
    code, _, err = cli(
        "evaluate",
        "--noisy", str(folder / "noisy.tif"),
        "--clean", str(folder / "clean.tif"),
        "--method", f"mine={folder / 'n2v.pt'}",
        "--noise-sigma", str(sigma),
        "--out", str(folder / "report"),
    )  # fmt: skip
    assert code == 0, err
    data_range = float(clean.max() - clean.min())
    blended = sd.denoise(model, noisy, noise_sigma=sigma)
    plain = sd.denoise(model, noisy)
    expected, unblended = (
        np.mean([psnr(c, d, data_range=data_range) for c, d in zip(clean, out, strict=True)])
        for out in (blended, plain)
    )
    assert abs(expected - unblended) > 0.01  # the blend changes the score measurably
    report = json.loads((folder / "report" / "report.json").read_text())
    mine = next(row for row in report["summary"] if row["method"] == "mine")
    assert mine["PSNR"] == pytest.approx(expected, abs=1e-4)
    text = (folder / "report" / "report.md").read_text()
    assert f"Noise sigma {sigma:g} (given)" in text and "every learned method" in text


def test_noise_sigma_refuses_a_model_that_cannot_blend_before_any_work(cli, files, no_training):
    folder, _, _, model = files
    model.training.pop("blind_spot_mse")  # as a model file of an earlier version
    sd.save_model(model, folder / "old.pt")
    code, _, err = cli(
        "evaluate",
        "--noisy", str(folder / "noisy.tif"),
        "--baselines", "n2v-grid",
        "--method", f"old={folder / 'old.pt'}",
        "--noise-sigma", "15",
        "--out", str(folder / "report"),
    )  # fmt: skip
    assert code == 2 and err.startswith("error: --method old:") and err.count("\n") == 1, err
    assert "no stored blind-spot error" in err
    assert not (folder / "report").exists()


def test_a_missing_bm3d_stops_evaluate_and_reproduce_before_any_work(
    cli, files, no_training, monkeypatch
):
    folder = files[0]
    monkeypatch.setitem(sys.modules, "bm3d", None)  # import bm3d now raises ImportError
    code, _, err = cli(
        "evaluate",
        "--noisy", str(folder / "noisy.tif"),
        "--baselines", "n2v-grid,bm3d",
        "--out", str(folder / "report"),
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: the bm3d baseline needs") and "semdenoise[bm3d]" in err
    code, _, err = cli("reproduce", "plaques", "--quick", "--out", str(folder / "demo"))
    assert code == 2 and "semdenoise[bm3d]" in err and err.count("\n") == 1, err
    assert not (folder / "report").exists() and not (folder / "demo").exists()


def test_reproduce_refuses_fewer_than_one_seed_and_a_wrong_em_folder_before_any_work(
    cli, tmp_path, no_training
):
    code, _, err = cli("reproduce", "plaques", "--seeds", "0", "--out", str(tmp_path / "p"))
    assert code == 2 and err == "error: --seeds must be at least 1, got 0\n", err
    code, _, err = cli(
        "reproduce", "em", "--seeds", "2", "--data", str(tmp_path), "--out", str(tmp_path / "e")
    )
    assert code == 2 and err.startswith(f"error: {tmp_path}: not the Lucchi EM data"), err
    assert not (tmp_path / "p").exists() and not (tmp_path / "e").exists()
