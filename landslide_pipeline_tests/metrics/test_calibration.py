import numpy as np
import pytest

from landslide_pipeline.metrics import confusion_counts, segmentation_metrics
from landslide_pipeline.metrics.calibration import ProbabilityHistogram, decision_scores


def scored_pixels(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that are informative but shifted: landslides around 0.35, background around 0.1."""
    rng = np.random.default_rng(seed)
    truth = rng.random((20, 16, 16)) < 0.1
    probability = np.clip(np.where(truth, rng.normal(0.35, 0.1, truth.shape), rng.normal(0.1, 0.08, truth.shape)),
                          0, 1).astype(np.float32)
    return probability, truth.astype(np.uint8)


def test_counts_at_any_threshold_equal_direct_counting():
    probability, truth = scored_pixels()
    histogram = ProbabilityHistogram()
    histogram.add(probability[:10], truth[:10])
    histogram.add(probability[10:], truth[10:])
    for threshold in (0.05, 0.2, 0.5, 0.731):
        assert histogram.counts_at(threshold) == confusion_counts(probability > threshold, truth)


def test_the_best_threshold_maximises_f1_and_beats_the_argmax():
    probability, truth = scored_pixels()
    histogram = ProbabilityHistogram()
    histogram.add(probability, truth)
    threshold, counts = histogram.best_threshold()
    best = segmentation_metrics(counts)["f1"]
    brute = max(segmentation_metrics(confusion_counts(probability > t, truth))["f1"] for t in np.arange(0.001, 1, 0.001))
    assert best == pytest.approx(brute)
    assert 0.15 < threshold < 0.3
    assert best > segmentation_metrics(histogram.counts_at(0.5))["f1"] + 0.2


def test_valid_mask_and_merging_and_round_trip():
    probability, truth = scored_pixels()
    valid = np.ones(truth.shape, bool)
    valid[:, :4] = False
    a, b = ProbabilityHistogram(), ProbabilityHistogram()
    a.add(probability, truth, valid)
    b.add(probability[:, 4:], truth[:, 4:])
    assert a.counts_at(0.3) == b.counts_at(0.3)
    merged = a + b
    assert merged.pixels == 2 * a.pixels
    assert ProbabilityHistogram.from_dict(merged.to_dict()).counts_at(0.2) == merged.counts_at(0.2)


def test_decision_scores_show_both_decisions():
    probability, truth = scored_pixels()
    histogram = ProbabilityHistogram()
    histogram.add(probability, truth)
    row = decision_scores(histogram, 0.22)
    assert row["threshold"] == 0.22
    assert row["f1"] == pytest.approx(segmentation_metrics(confusion_counts(probability > 0.22, truth))["f1"])
    assert row["f1_argmax"] == pytest.approx(segmentation_metrics(confusion_counts(probability > 0.5, truth))["f1"])


def test_bad_thresholds_and_empty_histograms_raise():
    with pytest.raises(ValueError, match="threshold"):
        ProbabilityHistogram().counts_at(1.0)
    with pytest.raises(ValueError, match="no pixels"):
        ProbabilityHistogram().best_threshold()
    with pytest.raises(ValueError, match="shape"):
        ProbabilityHistogram().add(np.zeros(3), np.zeros(4))
