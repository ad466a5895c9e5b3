"""``semdenoise check``: no-reference quality checks of a trained denoiser, and its errors."""

import inspect
import json
import typing

import numpy as np
import pytest
import tifffile

import semdenoise as sd
from semdenoise.evaluation.no_reference import BLIND_SPOT, NO_REFERENCE_COLUMNS
from semdenoise.io import save_model
from semdenoise.models.normalization import Normalization
from semdenoise.models.trained import TrainedModel
from semdenoise.models.unet import UNet
from semdenoise.report import markdown_table

TINY_TRAINING = sd.TrainConfig(steps=4, batch_size=2, val_fraction=0.0)


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory):
    """Three 48x40 noisy images: smooth blobs plus Gaussian noise sigma 15."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :40]
    clean = np.stack(
        [
            20.0 + 100.0 * np.exp(-((yy - rng.uniform(0, 48)) ** 2 + (xx - 20) ** 2) / 50.0)
            for _ in range(3)
        ]
    )
    noisy = (clean + rng.normal(0, 15, clean.shape)).astype(np.float32)
    path = tmp_path_factory.mktemp("check") / "noisy.tif"
    tifffile.imwrite(path, noisy, photometric="minisblack")
    return path


@pytest.fixture(scope="module")
def n2v_model(stack_file):
    """A tiny N2V model, trained once for every test here (training dominates the time)."""
    path = stack_file.with_name("n2v.pt")
    unet = sd.UNetConfig(depth=2, base_channels=4)
    sd.train_n2v(tifffile.imread(stack_file), unet=unet, train=TINY_TRAINING, out=path)
    return path


def _one_error_line(code: int, err: str, match: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], err


def test_check_prints_a_row_per_image_the_mean_and_the_input_and_writes_json(
    cli, tmp_path, n2v_model, stack_file
):
    report = tmp_path / "checks.json"
    code, out, err = cli(
        "check", str(n2v_model), str(stack_file), "--json", str(report), "--device", "cpu"
    )
    assert code == 0, err
    data = json.loads(report.read_text())
    rows, reference = data["denoised"], data["input"]
    assert [r["image"] for r in rows] == [f"{stack_file}[{z}]" for z in range(3)] + ["mean"]
    assert [r["image"] for r in reference] == [r["image"] for r in rows]
    assert all(np.isfinite(r[BLIND_SPOT]) for r in rows + reference)
    # the printed table holds the JSON's numbers: the model's rows, then the input's mean
    table = markdown_table([*rows, reference[-1]], NO_REFERENCE_COLUMNS)
    assert table in out
    assert len([line for line in out.splitlines() if line.startswith("| ")]) == 1 + 4 + 1
    assert "input as is" in table.splitlines()[-1]
    assert "Blind-spot loss" in out and f"wrote {report}" in out
    assert data["seed"] == 0 and data["repeats"] == 2


def test_check_is_reproducible_and_the_seed_changes_the_masks(cli, n2v_model, stack_file):
    runs = [
        cli("check", str(n2v_model), str(stack_file), "--seed", seed, "--repeats", "1")
        for seed in "113"
    ]
    assert all(code == 0 for code, _, _ in runs)
    first, again, other = (out for _, out, _ in runs)
    assert first == again and first != other


def test_check_refuses_what_it_cannot_check(cli, tmp_path, stack_file):
    not_a_model = tmp_path / "not_a_model.pt"
    not_a_model.write_bytes(b"these bytes are not a model")
    code, _, err = cli("check", str(not_a_model), str(stack_file))
    _one_error_line(code, err, match="not_a_model.pt")

    # a segmenter-only model file, as train_seg writes it (without the training time)
    segmenter = UNet(sd.UNetConfig(depth=2, base_channels=4, residual=False))
    seg_model = tmp_path / "seg.pt"
    save_model(TrainedModel("seg", {"segmenter": segmenter}, Normalization(50.0, 20.0)), seg_model)
    code, _, err = cli("check", str(seg_model), str(stack_file))
    _one_error_line(code, err, match="holds no denoiser")

    volume_denoiser = UNet(sd.UNetConfig(dims=3, depth=1, base_channels=4))
    model_3d = tmp_path / "n2v_3d.pt"
    save_model(
        TrainedModel("n2v", {"denoiser": volume_denoiser}, Normalization(50.0, 20.0)), model_3d
    )
    code, _, err = cli("check", str(model_3d), str(stack_file))
    _one_error_line(code, err, match="2-D denoisers")


def test_check_refuses_bad_images(cli, tmp_path, noisy_stack, n2v_model):
    code, _, err = cli("check", str(n2v_model), str(tmp_path / "missing.tif"))
    _one_error_line(code, err, match="no such file")
    with_nan = noisy_stack[1].copy()
    with_nan[1, 5, 7] = np.nan
    nan_file = tmp_path / "nan.tif"
    tifffile.imwrite(nan_file, with_nan, photometric="minisblack")
    code, _, err = cli("check", str(n2v_model), str(nan_file))
    _one_error_line(code, err, match="NaN")
    code, _, err = cli("check", str(n2v_model), str(nan_file), "--repeats", "0")
    _one_error_line(code, err, match="--repeats at least 1")
    nowhere = tmp_path / "missing" / "checks.json"
    code, _, err = cli("check", str(n2v_model), str(nan_file), "--json", str(nowhere))
    _one_error_line(code, err, match="does not exist")


def test_the_help_states_the_library_defaults():
    from semdenoise.cli_check import check_command
    from semdenoise.evaluation.no_reference import DEFAULT_REPEATS
    from semdenoise.predict import denoise

    hints = typing.get_type_hints(check_command, include_extras=True)
    repeats_help = hints["repeats"].__metadata__[0].help
    tile_help = hints["tile_size"].__metadata__[0].help
    assert f"(default {DEFAULT_REPEATS})" in repeats_help
    assert f"(default {inspect.signature(denoise).parameters['tile_size'].default})" in tile_help
