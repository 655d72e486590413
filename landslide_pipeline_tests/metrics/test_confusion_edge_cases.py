"""metrics/confusion.py against examples computed by hand, and its edge cases.

The module's rule for an undefined ratio (zero denominator): 1.0 when prediction and reference
agree that there is nothing to find (no positives in either), else 0.0; kappa is 1.0 when
chance agreement is 1 (both masks constant and equal); no pixel at all is a ValueError.
"""

import numpy as np
import pytest

from landslide_pipeline.metrics import ConfusionCounts, confusion_counts, segmentation_metrics

PERFECT = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0, "accuracy": 1.0, "kappa": 1.0}


def test_a_3x4_example_computed_by_hand():
    prediction = np.array([[1, 1, 1, 0],
                           [0, 1, 0, 0],
                           [0, 0, 0, 0]])
    reference = np.array([[1, 1, 0, 0],
                          [1, 1, 0, 0],
                          [0, 0, 0, 1]])
    # TP at (0,0) (0,1) (1,1) = 3; FP at (0,2) = 1; FN at (1,0) (2,3) = 2; TN = 12 - 6 = 6
    counts = confusion_counts(prediction, reference)
    assert counts == ConfusionCounts(tp=3, fp=1, fn=2, tn=6)
    assert counts.total == 12
    m = segmentation_metrics(counts)
    assert m["precision"] == pytest.approx(3 / 4)  # tp / (tp + fp) = 3 / 4
    assert m["recall"] == pytest.approx(3 / 5)  # tp / (tp + fn) = 3 / 5
    assert m["f1"] == pytest.approx(2 / 3)  # 2 tp / (2 tp + fp + fn) = 6 / 9
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))  # = harmonic mean of P and R
    assert m["iou"] == pytest.approx(1 / 2)  # tp / (tp + fp + fn) = 3 / 6
    assert m["accuracy"] == pytest.approx(3 / 4)  # (tp + tn) / n = 9 / 12
    # predicted positive 4, negative 8; reference positive 5, negative 7
    # po = 9/12 = 27/36; pe = (4*5 + 8*7) / 12^2 = 76/144 = 19/36
    # kappa = (27/36 - 19/36) / (1 - 19/36) = (8/36) / (17/36) = 8/17
    assert m["kappa"] == pytest.approx(8 / 17)


def test_total_disagreement_has_kappa_minus_one():
    prediction = np.array([0, 0, 1, 1])
    reference = np.array([1, 1, 0, 0])
    # tp 0, fp 2, fn 2, tn 0: every ratio has a nonzero denominator and a zero numerator
    m = segmentation_metrics(confusion_counts(prediction, reference))
    assert m["precision"] == m["recall"] == m["f1"] == m["iou"] == m["accuracy"] == 0.0
    # po = 0; pe = (2*2 + 2*2) / 4^2 = 1/2; kappa = (0 - 1/2) / (1 - 1/2) = -1
    assert m["kappa"] == pytest.approx(-1.0)


def test_swapping_prediction_and_reference_swaps_precision_and_recall_only():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 16, 16)) > 0.6
    forward = segmentation_metrics(confusion_counts(a, b))
    backward = segmentation_metrics(confusion_counts(b, a))
    assert forward["precision"] == pytest.approx(backward["recall"])
    assert forward["recall"] == pytest.approx(backward["precision"])
    for symmetric in ("f1", "iou", "accuracy", "kappa"):
        assert forward[symmetric] == pytest.approx(backward[symmetric])


def test_any_nonzero_value_is_a_landslide():
    prediction = np.array([0, 255, 2, 0], dtype=np.uint8)
    reference = np.array([True, True, False, False])
    assert confusion_counts(prediction, reference) == ConfusionCounts(tp=1, fp=1, fn=1, tn=1)


# --- no positives anywhere -------------------------------------------------------------------

def test_no_positives_in_either_mask_is_perfect_agreement():
    empty = np.zeros((3, 8, 8), dtype=np.uint8)  # a split of three landslide-free tiles
    counts = confusion_counts(empty, empty)
    assert counts == ConfusionCounts(tn=192)
    # every ratio is 0/0 and both agree there is nothing to find: 1.0; accuracy 192/192;
    # pe = (0*0 + 192*192) / 192^2 = 1, so kappa takes the perfect-agreement branch
    assert segmentation_metrics(counts) == PERFECT


def test_false_alarms_on_a_split_without_landslides_score_zero():
    reference = np.zeros((4, 4), dtype=np.uint8)
    prediction = reference.copy()
    prediction[0, :2] = 1  # two false positives, nothing to find
    m = segmentation_metrics(confusion_counts(prediction, reference))
    assert m["precision"] == 0.0  # 0 / (0 + 2)
    assert m["recall"] == 0.0  # 0 / 0, and the prediction does not agree there is nothing: 0.0, not 1.0
    assert m["f1"] == 0.0 and m["iou"] == 0.0  # 0 / 2
    assert m["accuracy"] == pytest.approx(14 / 16)
    # pe = (2*0 + 14*16) / 16^2 = 14/16 = po, so kappa = 0: no better than chance
    assert m["kappa"] == pytest.approx(0.0)


def test_missing_every_landslide_scores_zero():
    reference = np.zeros((4, 4), dtype=np.uint8)
    reference[1:3, 1:3] = 1  # 4 landslide pixels, all missed
    m = segmentation_metrics(confusion_counts(np.zeros_like(reference), reference))
    assert m["precision"] == 0.0  # 0 / 0 with landslides to find: 0.0
    assert m["recall"] == m["f1"] == m["iou"] == 0.0  # 0 / 4
    assert m["accuracy"] == pytest.approx(12 / 16)
    # pe = (0*4 + 16*12) / 16^2 = 12/16 = po: kappa 0
    assert m["kappa"] == pytest.approx(0.0)


# --- all positives ---------------------------------------------------------------------------

def test_all_positive_in_both_masks_is_perfect_agreement():
    full = np.ones((2, 4, 4), dtype=np.uint8)
    counts = confusion_counts(full, full)
    assert counts == ConfusionCounts(tp=32)
    # P = R = F1 = IoU = 32/32; accuracy 32/32; pe = (32*32 + 0*0) / 32^2 = 1: kappa 1
    assert segmentation_metrics(counts) == PERFECT


def test_all_positive_prediction_on_a_background_only_reference():
    m = segmentation_metrics(confusion_counts(np.ones((4, 4)), np.zeros((4, 4))))
    # tp 0, fp 16: precision 0/16; recall 0/0 with a disagreement: 0.0; accuracy 0/16
    assert m["precision"] == m["recall"] == m["f1"] == m["iou"] == m["accuracy"] == 0.0
    # pe = (16*0 + 0*16) / 16^2 = 0; kappa = (0 - 0) / (1 - 0) = 0
    assert m["kappa"] == 0.0


def test_partial_prediction_of_an_all_landslide_reference_has_kappa_zero():
    reference = np.ones(4, dtype=np.uint8)
    prediction = np.array([1, 1, 1, 0])
    counts = confusion_counts(prediction, reference)
    assert counts == ConfusionCounts(tp=3, fn=1)
    m = segmentation_metrics(counts)
    assert m["precision"] == 1.0  # 3 / 3
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(6 / 7)  # 6 / (6 + 0 + 1)
    assert m["iou"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(3 / 4)
    # pe = (3*4 + 1*0) / 4^2 = 3/4 = po: a constant reference leaves kappa nothing to beat chance by
    assert m["kappa"] == pytest.approx(0.0)


# --- empty split -----------------------------------------------------------------------------

def test_an_empty_split_counts_nothing_and_its_metrics_raise():
    none = np.zeros((0, 8, 8), dtype=np.uint8)  # no tiles
    counts = confusion_counts(none, none)
    assert counts == ConfusionCounts() and counts.total == 0
    with pytest.raises(ValueError, match="empty split"):
        segmentation_metrics(counts)


def test_summing_no_tiles_gives_empty_counts_that_raise():
    total = sum([], ConfusionCounts())
    with pytest.raises(ValueError, match="no pixels"):
        segmentation_metrics(total)


def test_large_python_int_counts_are_exact():
    # n = 4e10 pixels: n^2 = 1.6e21 needs Python's unbounded ints
    counts = ConfusionCounts(tp=10**10, fp=10**10 // 3, fn=10**10 // 3, tn=10**10)
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    n = counts.total
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
    assert segmentation_metrics(counts)["kappa"] == pytest.approx((po - pe) / (1 - pe))


def test_numpy_int64_counts_do_not_overflow():
    tp = tn = 1_200_000_000
    fp = fn = 400_000_000  # n = 3.2e9 pixels: n^2 = 1.02e19 > int64's 9.2e18
    exact = segmentation_metrics(ConfusionCounts(tp, fp, fn, tn))["kappa"]
    assert exact == pytest.approx(0.5)  # po = 0.75, pe = 0.5
    numpy_counts = ConfusionCounts(*(np.int64(v) for v in (tp, fp, fn, tn)))
    with np.errstate(over="ignore"):
        kappa = segmentation_metrics(numpy_counts)["kappa"]
    assert kappa == pytest.approx(exact)  # 0.846 before the counts became Python ints
