"""Baselines tune themselves without the clean image; the evaluation's numbers by hand."""

import numpy as np
import pytest

from semdenoise.baselines import Method, build_baselines, classic_method
from semdenoise.evaluation import evaluate, otsu_segmenter, write_evaluation
from semdenoise.evaluation.metrics import psnr
from semdenoise.synth import make_set


@pytest.fixture(scope="module")
def plaques():
    return make_set("plaques", 2, size=64, seed=0)


@pytest.mark.parametrize("name", ["gaussian", "tv", "nlm", "bm3d"])
def test_classic_baselines_denoise_without_seeing_the_clean_image(plaques, name):
    method = classic_method(name)
    denoised = method(plaques.noisy[0])
    assert denoised.shape == plaques.noisy[0].shape and denoised.dtype == np.float32
    before = psnr(plaques.clean[0], plaques.noisy[0], data_range=plaques.data_range)
    after = psnr(plaques.clean[0], denoised, data_range=plaques.data_range)
    assert after > before + 5
    assert len(next(iter(method.details.values()))) == 1  # what it chose is recorded


def test_calibration_picks_a_stronger_filter_for_a_noisier_image(plaques):
    method = classic_method("gaussian")
    method(plaques.clean[0] + np.random.default_rng(0).normal(0, 2, (64, 64)))
    method(plaques.clean[0] + np.random.default_rng(0).normal(0, 30, (64, 64)))
    weak, strong = method.details["sigma"]
    assert strong > weak


def test_unknown_baselines_are_refused(plaques):
    with pytest.raises(ValueError, match="unknown baseline"):
        build_baselines(["gaussian", "wiener"], plaques.noisy)


def _identity() -> Method:
    return Method("identity", lambda image: (image, {}))


def test_evaluation_numbers_by_hand():
    clean = np.zeros((2, 32, 32), np.float32)
    clean[:, 4:12, 4:12] = 100.0
    clean[0, 20:28, 20:28] = 100.0  # image 0: two objects, image 1: one
    labels = (clean > 0).astype(np.uint8)
    noisy = clean + 10.0  # a constant offset: PSNR = 20 log10(100 / 10) = 20 dB
    perfect = Method("perfect", lambda image: (image - 9.0, {}))  # off by 1: 40 dB
    result = evaluate(
        noisy, [_identity(), perfect], clean=clean, labels=labels, segmenter=otsu_segmenter
    )
    assert [r["method"] for r in result.summary] == ["clean", "noisy", "identity", "perfect"]
    assert result.row("noisy")["PSNR"] == pytest.approx(20.0)
    assert result.row("identity")["PSNR"] == pytest.approx(20.0)
    assert result.row("perfect")["PSNR"] == pytest.approx(40.0)
    assert result.row("perfect")["IoU"] == pytest.approx(1.0)
    assert result.row("perfect")["objects"] == "3/3 (3 found)"
    assert result.row("perfect")["F1"] == pytest.approx(1.0)
    assert result.data_range == pytest.approx(100.0)


def test_detection_counts_are_pooled_over_images():
    clean = np.zeros((2, 32, 32), np.float32)
    clean[0, 2:8, 2:8] = clean[0, 12:18, 12:18] = clean[0, 22:28, 22:28] = 1.0
    clean[1, 2:8, 2:8] = 1.0
    drop_two = Method("misses", lambda image: (np.where(np.arange(32) < 10, image, 0.0), {}))
    result = evaluate(clean, [drop_two], labels=clean.astype(np.uint8), segmenter=otsu_segmenter)
    row = result.row("misses")
    # image 0: 1 of 3 found; image 1: 1 of 1 -> pooled recall 2/4, precision 2/2
    assert row["recall"] == pytest.approx(0.5) and row["precision"] == pytest.approx(1.0)
    assert row["F1"] == pytest.approx(2 * 2 / (4 + 2))


def test_mismatched_shapes_and_names_are_refused():
    noisy = np.zeros((2, 16, 16), np.float32)
    with pytest.raises(ValueError, match="does not match"):
        evaluate(noisy, [_identity()], clean=np.zeros((2, 16, 17)))
    with pytest.raises(ValueError, match="unique"):
        evaluate(noisy, [_identity(), _identity()])


def test_report_has_tables_json_and_figures(tmp_path, plaques):
    methods = [classic_method("gaussian"), _identity()]
    result = evaluate(
        plaques.noisy,
        methods,
        clean=plaques.clean,
        labels=plaques.masks,
        instances=plaques.instances,
        segmenter=otsu_segmenter,
    )
    report = write_evaluation(result, tmp_path, title="t")
    text = report.read_text()
    assert "| gaussian |" in text and "## Per image" in text
    assert (tmp_path / "comparison.png").stat().st_size > 1000
    assert (tmp_path / "report.json").is_file()


@pytest.mark.parametrize("name", ["n2v-grid", "n2v-patch"])
def test_n2v_baselines_train_on_the_noisy_images_only(plaques, name):
    (method,) = build_baselines([name], plaques.noisy, steps=3)
    assert method.model is not None and method.model.training["steps"] == 3
    assert method.model.training["masking"]["mode"] == name.removeprefix("n2v-")
    denoised = method(plaques.noisy[1])
    assert denoised.shape == (64, 64) and np.isfinite(denoised).all()
