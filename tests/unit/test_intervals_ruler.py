"""Intervals that mean what they say, and a ruler that keeps its best weights."""

import numpy as np
import pytest
import torch

from semdenoise.evaluation.intervals import add_intervals, separable_from_best, with_interval
from semdenoise.evaluation.ruler import RulerRecord, RulerSettings, _KeepBest, train_ruler


def rows(method, psnrs, matched=None, true=None, predicted=None):
    out = []
    for i, value in enumerate(psnrs):
        row = {"method": method, "image": i, "PSNR": float(value)}
        if matched is not None:
            row |= {"_matched": matched[i], "_true": true[i], "_predicted": predicted[i]}
        out.append(row)
    return out


def test_interval_of_equal_images_is_a_point_and_the_mean_lies_inside():
    per_image = rows("a", [30.0] * 5) + rows("b", [28.0, 31.0, 33.0, 29.0, 35.0])
    summary = [{"method": "a", "PSNR": 30.0}, {"method": "b", "PSNR": 31.2}]
    add_intervals(summary, per_image)
    assert summary[0]["PSNR CI"] == [30.0, 30.0]
    low, high = summary[1]["PSNR CI"]
    assert 28.0 <= low < 31.2 < high <= 35.0
    again = [{"method": "b", "PSNR": 31.2}]
    add_intervals(again, per_image)
    assert again[0]["PSNR CI"] == summary[1]["PSNR CI"]  # seeded: the same every time


def test_pooled_f1_is_bootstrapped_from_pooled_counts():
    # image 0: 2 of 2 found exactly; image 1: nothing found of 2 -> pooled F1 = 4 / 8
    per_image = rows("a", [1.0, 1.0], matched=[2, 0], true=[2, 2], predicted=[2, 0])
    summary = [{"method": "a", "PSNR": 1.0, "F1": 0.5}]
    add_intervals(summary, per_image)
    low, high = summary[0]["F1 CI"]
    # resamples hold image 0 twice (F1 1), image 1 twice (F1 0) or one of each (0.5)
    assert low == 0.0 and high == 1.0


def test_a_constant_lead_is_real_and_a_noisy_one_is_not():
    rng = np.random.default_rng(0)
    base = rng.normal(30, 2, size=8)
    per_image = (
        rows("best", base + 1.0)
        + rows("behind", base)
        + rows("noisy tie", base + 1.0 + np.array([3.0, -3.0] * 4))  # same mean, spread
    )
    summary = [
        {
            "method": name,
            "PSNR": float(np.mean([r["PSNR"] for r in per_image if r["method"] == name])),
        }
        for name in ("best", "behind", "noisy tie")
    ]
    result = separable_from_best(summary, per_image, scores=["PSNR"])
    by_method = {r["method"]: r for r in result}
    best = result[0]["best"]
    assert best in ("best", "noisy tie")
    assert by_method["behind"]["real"] and by_method["behind"]["interval"][0] > 0
    other = "noisy tie" if best == "best" else "best"
    assert not by_method[other]["real"]


def test_interval_cells():
    assert with_interval(36.214, [35.9, 36.5]) == "36.21 (35.90–36.50)"
    assert with_interval(0.7421, [0.7, 0.78]) == "0.742 (0.700–0.780)"
    assert with_interval("3/4", None) == "3/4"


class Trainer:
    def __init__(self) -> None:
        self.global_step, self.max_steps, self.should_stop = 0, 100, False


class Module:
    def __init__(self) -> None:
        self.segmenter = torch.nn.Linear(1, 1)


def test_keep_best_stops_after_patience_and_remembers_the_best_weights():
    values = iter([0.2, 0.5, 0.4, 0.45, 0.3, 0.9])
    module, trainer, record = Module(), Trainer(), RulerRecord()

    def score(network):
        value = next(values)
        return {"IoU": value, "F1": value}

    keep = _KeepBest(score, every=10, patience=3, record=record)
    weights_at = {}
    while not trainer.should_stop:
        trainer.global_step += 1
        with torch.no_grad():
            module.segmenter.weight.fill_(trainer.global_step)  # "training" moves weights
        keep.on_train_batch_end(trainer, module, None, None, 0)
        weights_at[trainer.global_step] = trainer.global_step
    assert [s["step"] for s in record.scores] == [10, 20, 30, 40, 50]  # 0.9 never reached
    assert record.best["step"] == 20 and record.stopped_at == 50
    assert float(keep.best_state["weight"]) == 20.0


def test_train_ruler_returns_its_best_weights(noisy_stack):
    clean, _ = noisy_stack
    masks = (clean > np.percentile(clean, 80)).astype(np.uint8)
    settings = RulerSettings(max_steps=12, val_every=3, patience=2, crop_size=32, batch_size=2)
    model, record = train_ruler(
        clean[:2], masks[:2], val_clean=clean[2:], val_masks=masks[2:], settings=settings
    )
    steps = [s["step"] for s in record.scores]
    assert steps == [3 * (i + 1) for i in range(len(steps))] and record.stopped_at == steps[-1]
    assert record.best == max(record.scores, key=lambda s: s["IoU"] + s["F1"])  # first best
    from semdenoise.evaluation.ruler import clean_score
    from semdenoise.evaluation.segmenters import model_segmenter

    rescored = clean_score(model_segmenter(model), clean[2:], masks[2:])
    assert rescored["IoU"] == pytest.approx(record.best["IoU"], abs=1e-6)
    assert rescored["F1"] == pytest.approx(record.best["F1"], abs=1e-6)
