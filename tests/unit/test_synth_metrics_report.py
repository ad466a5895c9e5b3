import json

import numpy as np
import pytest

from semdenoise.evaluation.metrics import psnr, ssim
from semdenoise.report import markdown_table, save_panel, write_report
from semdenoise.synth import add_poisson_gaussian, somata_image


def test_synthetic_image_is_seeded_and_masks_bright_targets():
    first = somata_image((64, 80), rng=np.random.default_rng(3))
    again = somata_image((64, 80), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(first.clean, again.clean)
    assert first.clean.shape == first.mask.shape == (64, 80)
    assert set(np.unique(first.mask)) <= {0, 1} and first.mask.any()
    assert first.clean[first.mask == 1].mean() > first.clean[first.mask == 0].mean()


def test_poisson_gaussian_noise_has_the_expected_variance():
    clean = np.full((200, 200), 50.0, np.float32)
    noisy = add_poisson_gaussian(
        clean, photons_per_unit=0.5, read_sigma=3.0, rng=np.random.default_rng(0)
    )
    # var = clean / photons_per_unit + read_sigma^2 = 100 + 9
    assert noisy.var() == pytest.approx(109, rel=0.05)
    assert noisy.mean() == pytest.approx(50, abs=0.2)


def test_psnr_matches_the_hand_computed_value_and_needs_the_data_range():
    clean = np.zeros((10, 10))
    image = np.full((10, 10), 2.0)
    assert psnr(clean, image, data_range=20.0) == pytest.approx(10 * np.log10(400 / 4))
    assert ssim(clean + 1, clean + 1, data_range=1.0) == pytest.approx(1.0)
    with pytest.raises(TypeError):
        psnr(clean, image)  # data_range is keyword-only and required


def test_report_files(tmp_path):
    rows = [{"method": "a", "PSNR": 20.123456}, {"method": "b", "PSNR": 21.0}]
    table = markdown_table(rows)
    assert table.splitlines()[0] == "| method | PSNR |" and "20.123" in table
    write_report(tmp_path, title="t", sections={"s": table}, data={"rows": rows})
    assert json.loads((tmp_path / "report.json").read_text())["rows"][1]["PSNR"] == 21.0
    save_panel(tmp_path / "p.png", [np.zeros((8, 8)), np.ones((8, 10))], ["x", "y"])
    assert (tmp_path / "p.png").stat().st_size > 0
