"""The paper's experiments end to end at toy sizes: every report file, every row."""

import json
from dataclasses import replace

import numpy as np

from semdenoise.evaluation.ruler import RulerSettings
from semdenoise.experiments.masking import MaskingSettings, run_masking
from semdenoise.experiments.plaques import PlaquesSettings, run_plaques, run_plaques_seeds

TINY_PLAQUES = PlaquesSettings(
    size=64,
    n_somata=3,
    n_train=3,
    n_test=2,
    steps=3,
    style_steps=2,
    ruler=RulerSettings(max_steps=4, val_every=2, crop_size=32, batch_size=2),
    n_ruler_val=1,
    baselines=("gaussian", "bm3d"),
)


def test_reproduce_plaques_writes_the_demo_report(tmp_path):
    result = run_plaques(tmp_path, TINY_PLAQUES)
    methods = [row["method"] for row in result["summary"]]
    assert methods == ["clean", "noisy", "gaussian", "bm3d", "n2v", "joint"]
    data = json.loads((tmp_path / "report.json").read_text())
    joint = next(r for r in data["summary"] if r["method"] == "joint")
    for key in ("PSNR", "SSIM", "IoU", "F1", "precision", "recall"):
        assert np.isfinite(joint[key])
    assert "| joint |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "comparison.png").stat().st_size > 1000
    assert (tmp_path / "bars.png").stat().st_size > 1000
    # the noisy images are not the clean ones: PSNR is finite and below the classic
    # filters' (the learned rows train for 3 steps and are not judged here)
    psnrs = {r["method"]: r["PSNR"] for r in data["summary"] if "PSNR" in r}
    assert np.isfinite(psnrs["noisy"])
    assert psnrs["noisy"] < min(psnrs["gaussian"], psnrs["bm3d"])
    # every score has its interval; the report says what differs and what cannot be told
    for row in data["summary"]:
        for key in ("PSNR", "SSIM", "IoU", "F1"):
            if key in row:
                low, high = row[f"{key} CI"]
                assert low <= row[key] <= high, (row["method"], key)
    text = (tmp_path / "report.md").read_text()
    assert "## Which differences are real" in text and "95 % bootstrap" in text
    # a 4-step ruler cannot rank: the report says so instead of ranking
    assert data["downstream_ranked"] is False and "No downstream ranking" in text
    assert [r["step"] for r in data["ruler"]["scores"]] == [2, 4]
    # the checks a user without clean images has, for every method and the input as is
    assert "## Without clean images" in text and "Blind-spot loss against **PSNR**" in text
    checked = [r["method"] for r in data["no_reference"]]
    assert checked == ["noisy", "gaussian", "bm3d", "n2v", "joint"]
    assert all(np.isfinite(r["blind-spot loss"]) for r in data["no_reference"])
    assert [r["score"] for r in data["no_reference_agreement"]] == ["PSNR", "SSIM"]
    # what the machine's load changes lives apart from the scores
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert set(timing["seconds per megapixel"]) == {"gaussian", "bm3d", "n2v", "joint"}
    assert "s/MP" not in json.dumps(data) and "seconds" not in json.dumps(data)


def test_reproduce_plaques_over_seeds_reports_each_seed_and_intervals_over_seeds(tmp_path):
    result = run_plaques_seeds(tmp_path, [3, 4], TINY_PLAQUES)
    for seed in (3, 4):
        single = json.loads((tmp_path / f"seed_{seed}" / "report.json").read_text())
        assert single["settings"]["seed"] == seed
    # every seed draws its own data: the noisy input's PSNR differs between seeds
    first, second = (
        json.loads((tmp_path / f"seed_{s}" / "report.json").read_text())["summary"] for s in (3, 4)
    )
    assert first[1]["method"] == "noisy" and first[1]["PSNR"] != second[1]["PSNR"]
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["seeds"] == [3, 4]
    noisy = next(r for r in data["rows"] if r["method"] == "noisy")
    assert noisy["PSNR per seed"] == [first[1]["PSNR"], second[1]["PSNR"]]
    low, high = noisy["PSNR CI"]
    assert low <= noisy["PSNR"] <= high
    # 4-step rulers cannot rank: no downstream score is pooled over seeds
    assert data["downstream_ranked_seeds"] == []
    assert all("IoU" not in r for r in data["rows"])
    assert {p["versus"] for p in data["paired"]} == {"noisy", "gaussian", "bm3d", "n2v"}
    text = (tmp_path / "report.md").read_text()
    assert "## joint against each method, seed by seed" in text
    assert "(seed_3/report.md)" in text and result["rows"] == data["rows"]
    assert set(json.loads((tmp_path / "timing.json").read_text())["wall_seconds"]) == {"3", "4"}


def test_reproduce_masking_writes_both_ablations(tmp_path):
    settings = MaskingSettings(
        counts=(4, 32),
        spread_counts=(4, 32),
        seeds=2,
        steps=40,
        n_train=3,
        n_test=1,
        val_every=20,
    )
    result = run_masking(tmp_path, settings)
    assert [row["masked pixels"] for row in result["psnr"]] == [4, 32]
    assert all(row["seeds"] == 2 for row in result["spread"])
    data = json.loads((tmp_path / "report.json").read_text())
    assert set(data["curves"]) == {"4 masked", "32 masked"}
    assert (tmp_path / "psnr_vs_masked.png").is_file() and (tmp_path / "loss_spread.png").is_file()


def nuclei_folder(folder, n=6):
    """A DSB2018-like folder: images/<id>.tif and masks/<id>.tif of a few discs."""
    import tifffile

    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    yy, xx = np.mgrid[:48, :48]
    for k in range(n):
        labels = np.zeros((48, 48), np.uint16)
        for value in range(1, 4):
            cy, cx = rng.integers(8, 40, size=2)
            labels[((yy - cy) ** 2 + (xx - cx) ** 2 < 30) & (labels == 0)] = value
        image = (30 + 150 * (labels > 0)).astype(np.uint8)
        tifffile.imwrite(folder / "images" / f"id{k}.tif", image)
        tifffile.imwrite(folder / "masks" / f"id{k}.tif", labels)
    return folder


def test_reproduce_nuclei_scores_three_pipelines_per_label_count(tmp_path):
    from semdenoise.experiments.nuclei import NucleiSettings, labelled_subset, run_nuclei

    data = nuclei_folder(tmp_path / "dsb")
    settings = NucleiSettings(
        sigmas=(20.0,), label_counts=(1, None), steps=4, crop=32, batch_size=2
    )
    result = run_nuclei(tmp_path / "out", settings, data=data)
    keys = [(r["labelled"], r["method"]) for r in result["rows"]]
    assert keys == [
        (count, method)
        for count in ("1", "all (4)")
        for method in ("baseline", "sequential", "joint", "joint from N2V")
    ]
    for row in result["rows"]:
        low, high = row["AP CI"]
        assert 0.0 <= low <= row["AP"] <= high <= 1.0 and 0.0 <= row["SEG"] <= 1.0
        assert ("PSNR" in row) == (row["method"] != "baseline")
    # equal total steps: sequential splits its budget between N2V and its segmenter
    runs = {(r["labelled"], r["model"]): r["steps"] for r in result["runs"]}
    assert runs[("1", "sequential: N2V")] + runs[("1", "sequential: segmenter")] == 4
    assert runs[("1", "joint")] == runs[("1", "baseline segmenter")] == 4
    assert runs[("1", "sequential: N2V")] + runs[("1", "joint from N2V (after the N2V steps)")] == 4
    data_json = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data_json["test_images"] == ["id2", "id5"]
    assert (tmp_path / "out" / "ap_sigma_20.png").stat().st_size > 1000
    # which images keep their labels follows the seed, and every seed labels some
    subsets = {tuple(labelled_subset(10, 3, seed=s)) for s in range(5)}
    assert len(subsets) > 1 and all(len(s) == 3 for s in subsets)
    assert labelled_subset(4, None, seed=3) == [0, 1, 2, 3]


def test_nuclei_seeds_run_apart_join_the_report_over_seeds(tmp_path, monkeypatch):
    """Seeds trained as separate runs (``--seed S --out OUT/seed_S``) or before an
    interruption are read back, not trained again; other settings are trained anew."""
    from semdenoise.experiments import nuclei

    data = nuclei_folder(tmp_path / "dsb")
    settings = nuclei.NucleiSettings(
        sigmas=(20.0,), label_counts=(1,), steps=2, crop=32, batch_size=2, warm_start=False
    )
    out = tmp_path / "out"
    for seed in (0, 1):
        nuclei.run_nuclei(out / f"seed_{seed}", replace(settings, seed=seed), data=data)
    trained = []
    real = nuclei.run_nuclei
    monkeypatch.setattr(
        nuclei,
        "run_nuclei",
        lambda folder, s, **kw: trained.append(s.seed) or real(folder, s, **kw),
    )
    result = nuclei.run_nuclei_seeds(out, [0, 1], settings, data=data)
    assert trained == []
    assert {r["method"] for r in result["rows"]} == {"baseline", "sequential", "joint"}
    assert (out / "report.md").is_file()
    nuclei.run_nuclei_seeds(out, [0, 1], replace(settings, steps=3), data=data)
    assert trained == [0, 1]  # a different budget is not the same run
