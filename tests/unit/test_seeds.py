"""Summaries over training seeds: Student-t intervals, paired wins, rulers that cannot rank."""

import pytest

from semdenoise.experiments.seeds import SeedRun, over_seeds, paired_over_seeds, seed_interval


def run(seed, n2v, joint, ranked=True, sigma=None):
    rows = [
        {"method": "clean", "IoU": 0.9},
        {"method": "n2v", "PSNR": n2v, "IoU": n2v / 100},
        {"method": "joint", "PSNR": joint, "IoU": joint / 100},
    ]
    if sigma is not None:
        rows = [{"sigma": sigma, **r} for r in rows]
    return SeedRun(seed, rows, ranked)


def test_seed_interval_is_the_student_t_interval():
    low, high = seed_interval([1.0, 2.0, 3.0])
    # mean 2, sample sd 1, t(0.975, 2 df) = 4.3027
    assert low == pytest.approx(2 - 4.3027 / 3**0.5, abs=1e-3)
    assert high == pytest.approx(2 + 4.3027 / 3**0.5, abs=1e-3)
    assert seed_interval([5.0]) is None
    assert seed_interval([4.0, 4.0]) == [4.0, 4.0]


def test_over_seeds_keeps_each_seed_and_skips_downstream_of_rulers_that_cannot_rank():
    runs = [run(0, 30.0, 31.0), run(1, 32.0, 33.0), run(2, 28.0, 35.0, ranked=False)]
    rows = {r["method"]: r for r in over_seeds(runs)}
    assert list(rows) == ["clean", "n2v", "joint"]
    assert rows["joint"]["PSNR per seed"] == [31.0, 33.0, 35.0]
    assert rows["joint"]["PSNR"] == pytest.approx(33.0)
    low, high = rows["joint"]["PSNR CI"]
    assert low < 33.0 < high
    # seed 2's ruler could not rank: its IoU is not pooled
    assert rows["joint"]["IoU per seed"] == [0.31, 0.33]
    assert rows["clean"]["IoU per seed"] == [0.9, 0.9]
    assert "PSNR" not in rows["clean"]


def test_paired_over_seeds_counts_wins_and_calls_a_difference_real_only_when_it_is():
    always = [run(0, 30.0, 31.0), run(1, 32.0, 33.1), run(2, 28.0, 28.9)]
    psnr = next(p for p in paired_over_seeds(always, "joint") if p["score"] == "PSNR")
    assert psnr["versus"] == "n2v" and psnr["won"] == "3/3" and psnr["real"]
    assert psnr["difference"] == pytest.approx(1.0)
    mixed = [run(0, 30.0, 31.0), run(1, 32.0, 31.5), run(2, 28.0, 28.9)]
    psnr = next(p for p in paired_over_seeds(mixed, "joint") if p["score"] == "PSNR")
    assert psnr["won"] == "2/3" and not psnr["real"]
    # clean is never a competitor; IoU has no clean difference either
    assert all(p["versus"] != "clean" for p in paired_over_seeds(mixed, "joint"))


def test_paired_over_seeds_pairs_within_each_sigma():
    runs = [run(s, 30.0 + s, 31.0 + s, sigma=sigma) for s in (0, 1) for sigma in ("15", "50")]
    by_seed = [SeedRun(s, runs[2 * s].rows + runs[2 * s + 1].rows) for s in (0, 1)]
    pairs = paired_over_seeds(by_seed, "joint", ("sigma", "method"))
    assert sorted({p["sigma"] for p in pairs}) == ["15", "50"]
    assert all(p["won"] == "2/2" for p in pairs if p["score"] == "PSNR")
