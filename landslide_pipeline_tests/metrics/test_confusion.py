import numpy as np
import pytest

from landslide_pipeline.metrics import ConfusionCounts, confusion_counts, segmentation_metrics


def test_counts_of_a_hand_made_example():
    pred = np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    ref = np.array([[1, 0, 1, 0], [1, 0, 0, 0]])
    assert confusion_counts(pred, ref) == ConfusionCounts(tp=2, fp=1, fn=1, tn=4)


def test_metrics_match_hand_computation():
    # tp=2 fp=1 fn=1 tn=4, n=8: po=6/8, pe=(3*3 + 5*5)/64 = 34/64
    m = segmentation_metrics(ConfusionCounts(tp=2, fp=1, fn=1, tn=4))
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["iou"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["kappa"] == pytest.approx((6 / 8 - 34 / 64) / (1 - 34 / 64))


def test_counts_add_over_tiles_rather_than_averaging():
    a = ConfusionCounts(tp=1, fp=0, fn=9, tn=0)
    b = ConfusionCounts(tp=90, fp=10, fn=0, tn=0)
    assert segmentation_metrics(a + b)["recall"] == pytest.approx(91 / 100)


def test_all_background_predictor_scores_zero_f1_when_landslides_exist():
    ref = np.zeros((10, 10), dtype=np.uint8)
    ref[2:4, 2:4] = 1
    m = segmentation_metrics(confusion_counts(np.zeros_like(ref), ref))
    assert m["f1"] == 0.0 and m["precision"] == 0.0 and m["recall"] == 0.0
    assert m["kappa"] == pytest.approx(0.0)


def test_all_positive_predictor():
    ref = np.zeros((10, 10), dtype=np.uint8)
    ref[:2] = 1
    m = segmentation_metrics(confusion_counts(np.ones_like(ref), ref))
    assert m["recall"] == 1.0
    assert m["precision"] == pytest.approx(0.2)
    assert m["kappa"] == pytest.approx(0.0)


def test_no_positives_anywhere_is_perfect_agreement():
    empty = np.zeros((4, 4))
    m = segmentation_metrics(confusion_counts(empty, empty))
    assert m == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0, "accuracy": 1.0, "kappa": 1.0}


def test_empty_split_raises():
    with pytest.raises(ValueError, match="empty split"):
        segmentation_metrics(ConfusionCounts())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        confusion_counts(np.zeros((2, 2)), np.zeros((3, 3)))
