"""Object-level detection scores against hand-computed cases."""

import numpy as np
import pytest

from semdenoise.evaluation.metrics import detection_scores


def squares(*boxes: tuple[int, int, int, int], shape=(20, 20), labelled=False) -> np.ndarray:
    image = np.zeros(shape, np.int32)
    for index, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        image[y0:y1, x0:x1] = index if labelled else 1
    return image


def test_perfect_partial_and_missed_objects():
    truth = squares((0, 4, 0, 4), (10, 14, 10, 14), (0, 2, 16, 18))
    # object 1 exact; object 2 shifted by one row: IoU 12/20 = 0.6; object 3 missed;
    # one false positive
    prediction = squares((0, 4, 0, 4), (11, 15, 10, 14), (17, 19, 0, 3))
    scores = detection_scores(truth, prediction)
    assert (scores.n_true, scores.n_predicted, scores.n_matched) == (3, 3, 2)
    assert scores.precision == pytest.approx(2 / 3) and scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 / 3)
    assert scores.mean_matched_iou == pytest.approx((1.0 + 0.6) / 2)


def test_below_threshold_is_not_a_match_and_one_prediction_matches_one_object():
    truth = squares((0, 4, 0, 4))
    shifted = squares((2, 6, 0, 4))  # IoU 8/24 = 1/3
    assert detection_scores(truth, shifted).n_matched == 0
    assert detection_scores(truth, shifted, iou_threshold=0.3).n_matched == 1
    # two touching true objects (an instance label image) and one prediction covering
    # both: IoU 0.5 with each, but it may match only one
    truth = squares((0, 4, 0, 4), (0, 4, 4, 8), labelled=True)
    scores = detection_scores(truth, squares((0, 4, 0, 8)))
    assert (scores.n_true, scores.n_predicted, scores.n_matched) == (2, 1, 1)
    assert scores.recall == 0.5 and scores.precision == 1.0


def test_empty_cases():
    empty = np.zeros((8, 8), np.uint8)
    both_empty = detection_scores(empty, empty)
    assert both_empty.f1 == 1.0 and both_empty.n_matched == 0
    missed = detection_scores(squares((0, 2, 0, 2), shape=(8, 8)), empty)
    assert missed.recall == 0.0 and missed.f1 == 0.0
    with pytest.raises(ValueError, match="differ"):
        detection_scores(empty, np.zeros((8, 9)))
