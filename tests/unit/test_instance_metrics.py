"""Instance scores (DenoiSeg's AP at IoU 0.5, the Cell Tracking Challenge's SEG) by hand."""

import json

import numpy as np
import pytest

from semdenoise.baselines import Method
from semdenoise.evaluation import evaluate, write_evaluation
from semdenoise.evaluation.intervals import add_intervals, separable_from_best
from semdenoise.evaluation.metrics import detection_scores, object_scores_from_counts
from semdenoise.experiments.seeds import SeedRun, over_seeds
from semdenoise.models.targets import objects_of


def squares(*boxes: tuple[int, int, int, int], shape=(20, 20), labelled=False) -> np.ndarray:
    image = np.zeros(shape, np.int32)
    for index, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        image[y0:y1, x0:x1] = index if labelled else 1
    return image


SEPARATE = ((0, 4, 0, 4), (10, 14, 10, 14), (0, 2, 16, 18))


def test_a_perfect_prediction_scores_one():
    truth = squares(*SEPARATE, labelled=True)
    scores = detection_scores(truth, squares(*SEPARATE))
    assert scores.ap == 1.0 and scores.seg == 1.0


def test_two_touching_objects_predicted_as_one():
    # A (4x2, 8 px) and B (4x6, 24 px) touch; the prediction is their union (32 px):
    # IoU 8/32 with A, 24/32 with B. Only B matches at IoU >= 0.5: TP 1, FP 0, FN 1.
    truth = squares((0, 4, 0, 2), (0, 4, 2, 8), labelled=True)
    scores = detection_scores(truth, squares((0, 4, 0, 8)))
    assert scores.ap == pytest.approx(1 / (1 + 0 + 1))
    # the merged object covers all of A and all of B: SEG = (1/4 + 3/4) / 2
    assert scores.seg == pytest.approx(0.5)
    # three equal touching squares merged: IoU 1/3 with each, no match at all
    truth = squares((0, 4, 0, 4), (0, 4, 4, 8), (0, 4, 8, 12), labelled=True)
    scores = detection_scores(truth, squares((0, 4, 0, 12)))
    assert scores.ap == 0.0  # TP 0, FP 1, FN 3
    assert scores.seg == pytest.approx(1 / 3)


def test_a_missed_object_and_a_shifted_one():
    truth = squares(*SEPARATE, labelled=True)
    # object 1 exact; object 2 shifted by a row (IoU 12/20, covers 12 of its 16 px);
    # object 3 missed
    prediction = squares((0, 4, 0, 4), (11, 15, 10, 14))
    scores = detection_scores(truth, prediction)
    assert scores.ap == pytest.approx(2 / (2 + 0 + 1))
    assert scores.seg == pytest.approx((1.0 + 0.6 + 0.0) / 3)


def test_seg_needs_more_than_half_of_the_object_and_ignores_false_positives():
    truth = squares((0, 4, 0, 4), labelled=True)
    half = squares((2, 6, 0, 4))  # covers 8 of 16 px: exactly half is not enough
    assert detection_scores(truth, half).seg == 0.0
    extra = squares((0, 4, 0, 4), (10, 14, 10, 14))  # exact, plus a false positive
    scores = detection_scores(truth, extra)
    assert scores.seg == 1.0 and scores.ap == pytest.approx(1 / 2)


def test_an_instance_image_keeps_touching_objects_apart_a_mask_merges_them():
    truth = squares((0, 4, 0, 4), (0, 4, 4, 8), labelled=True)
    instances = squares((0, 4, 0, 4), (0, 4, 4, 8), labelled=True)
    mask = (instances > 0).astype(np.uint8)
    assert objects_of(instances).max() == 2 and objects_of(mask).max() == 1
    as_instances = detection_scores(truth, instances)
    assert as_instances.ap == 1.0 and as_instances.seg == 1.0
    as_mask = detection_scores(truth, mask)  # one object, IoU 16/32 with each
    assert as_mask.n_predicted == 1
    assert as_mask.ap == pytest.approx(1 / 2) and as_mask.seg == pytest.approx(1 / 2)


def test_objects_of_masks_instances_and_what_is_neither():
    assert objects_of(squares((0, 2, 0, 2), (5, 7, 5, 7)) * 255).max() == 2  # a 0/255 mask
    labels = np.zeros((4, 4), np.uint16)
    labels[0, 0] = labels[3, 3] = 7  # one object in two pieces, and another
    labels[0, 3] = 9
    relabelled = objects_of(labels)
    assert relabelled.max() == 2 and relabelled[0, 0] == relabelled[3, 3]
    assert objects_of(np.zeros((3, 3), bool)).max() == 0
    with pytest.raises(ValueError, match="segmentation: expected a 0/1 mask"):
        objects_of(np.linspace(0, 1, 9).reshape(3, 3))
    with pytest.raises(ValueError, match="non-negative integer"):
        objects_of(np.array([[0, -1, 2]]))


def test_scores_from_counts_and_their_empty_cases():
    counted = object_scores_from_counts(2, 3, 2, 1.6)
    assert counted["F1"] == pytest.approx(4 / 5)
    assert counted["AP"] == pytest.approx(2 / 3) and counted["SEG"] == pytest.approx(1.6 / 3)
    nothing = object_scores_from_counts(0, 0, 0, 0.0)
    assert nothing["F1"] == nothing["AP"] == nothing["SEG"] == 1.0
    only_false = object_scores_from_counts(0, 0, 2, 0.0)  # no true object, two found
    assert only_false["AP"] == 0.0 and only_false["SEG"] == 1.0


def _pooling_case():
    """Image 0: its one object found exactly; image 1: three objects, none found.
    Per-image AP and SEG are 1 and 0 (mean 0.5); pooled, 1 of 4 objects: AP
    1 / (1 + 0 + 3) and SEG 1 / 4."""
    truth = np.zeros((2, 20, 20), np.int32)
    truth[0] = squares((0, 4, 0, 4))
    truth[1] = squares(*SEPARATE)
    found = truth.copy()
    found[1] = 0

    def only_found(image: np.ndarray) -> tuple[np.ndarray, dict]:
        # the nearest image, so the blind-spot check's masked copies are found too
        index = int(np.argmin([np.abs(image - t).sum() for t in truth]))
        return found[index].astype(np.float32), {}

    return truth, Method("finder", only_found)


def _threshold(image: np.ndarray) -> np.ndarray:
    return (image > 0.5).astype(np.uint8)


def test_pooled_ap_and_seg_count_objects_not_images_and_lie_in_their_interval():
    truth, finder = _pooling_case()
    result = evaluate(truth.astype(np.float32), [finder], labels=truth, segmenter=_threshold)
    per_image = [r for r in result.per_image if r["method"] == "finder"]
    assert [r["AP"] for r in per_image] == [1.0, 0.0]
    assert [r["SEG"] for r in per_image] == [1.0, 0.0]
    row = result.row("finder")
    assert row["AP"] == pytest.approx(1 / 4) and row["SEG"] == pytest.approx(1 / 4)
    assert row["AP"] != pytest.approx(np.mean([r["AP"] for r in per_image]))
    for score in ("AP", "SEG"):
        low, high = row[f"{score} CI"]
        assert low <= row[score] <= high
    # the noisy input is the truth itself here: everything found
    assert result.row("noisy")["AP"] == 1.0 and result.row("noisy")["AP CI"] == [1.0, 1.0]


def test_bootstrap_of_ap_and_seg_pools_the_resampled_counts():
    # image 0: 1 of 1 found; images 1-3: 0 of 3 found. Pooled AP = SEG = 1 / 10.
    per_image = [
        {"method": "a", "image": i, "_matched": m, "_true": t, "_predicted": m, "_seg_sum": s}
        for i, (m, t, s) in enumerate([(1, 1, 1.0), (0, 3, 0.0), (0, 3, 0.0), (0, 3, 0.0)])
    ]
    summary = [{"method": "a", "AP": 0.1, "SEG": 0.1}]
    add_intervals(summary, per_image)
    for score in ("AP", "SEG"):
        low, high = summary[0][f"{score} CI"]
        # a resample without image 0 scores 0; one of image 0 and three others scores
        # 1/10; four times image 0 scores 1
        assert low == 0.0 and 0.1 < high < 1.0
    # rows written before SEG existed still get F1 and AP intervals, and no SEG one
    old = [{k: v for k, v in r.items() if k != "_seg_sum"} for r in per_image]
    summary = [{"method": "a", "F1": 2 / 11, "AP": 0.1}]
    add_intervals(summary, old)
    assert "AP CI" in summary[0] and "SEG CI" not in summary[0]
    # a joint model's own segmenter: the same, from its "own " counts
    own = [
        {"method": "a", "image": r["image"]} | {f"own {k}": r[k] for k in r if k[0] == "_"}
        for r in per_image
    ]
    summary = [{"method": "a", "own AP": 0.1, "own SEG": 0.1}]
    add_intervals(summary, own)
    assert summary[0]["own AP CI"][0] == 0.0 and summary[0]["own SEG CI"][0] == 0.0


def test_reports_and_rankings_carry_ap_and_seg(tmp_path):
    truth, finder = _pooling_case()
    result = evaluate(truth.astype(np.float32), [finder], labels=truth, segmenter=_threshold)
    report = write_evaluation(result, tmp_path, title="t").read_text()
    headers = [line for line in report.splitlines() if line.startswith("| method |")]
    summary_header = next(h for h in headers if "| objects |" in h)
    per_image_header = next(h for h in headers if h.startswith("| method | image |"))
    assert "| F1 | AP | SEG |" in summary_header
    assert "| F1 | AP | SEG |" in per_image_header
    assert "**AP**" in report and "**SEG**" in report
    data = json.loads((tmp_path / "report.json").read_text())
    assert {"AP", "SEG", "AP CI", "SEG CI"} <= set(data["summary"][-1])
    ranked = separable_from_best(result.summary, result.per_image)
    assert {"AP", "SEG"} <= {r["score"] for r in ranked}


def test_reports_over_seeds_carry_ap_and_seg():
    runs = [
        SeedRun(seed, [{"method": "joint", "AP": ap, "SEG": seg, "own AP": ap}])
        for seed, ap, seg in [(0, 0.5, 0.6), (1, 0.7, 0.8)]
    ]
    row = over_seeds(runs)[0]
    assert row["AP"] == pytest.approx(0.6) and row["SEG"] == pytest.approx(0.7)
    assert row["own AP per seed"] == [0.5, 0.7]
