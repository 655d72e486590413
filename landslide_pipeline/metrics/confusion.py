"""Landslide-class metrics from confusion-matrix counts.

Counts are summed over every pixel of a split before any ratio is taken (micro-averaging), so
a tile with few landslide pixels weighs exactly as much as its pixels, no more.

Undefined ratios (a zero denominator) follow one rule: the score is 1.0 when prediction and
reference agree that there is nothing to find (no positives in either), else 0.0. So an
all-background predictor scores F1 = 0 on a split that holds landslides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ConfusionCounts:
    """Pixel counts of the landslide class: true/false positives and negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __post_init__(self) -> None:
        # Counts read back from a table are numpy int64, whose n * n in kappa overflows past ~3e9 pixels.
        for name in ("tp", "fp", "fn", "tn"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def confusion_counts(prediction: np.ndarray, reference: np.ndarray) -> ConfusionCounts:
    """Counts landslide (nonzero) against background (zero) pixels of two same-shape masks."""
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} != reference shape {reference.shape}")
    pred = prediction.astype(bool)
    ref = reference.astype(bool)
    tp = int(np.count_nonzero(pred & ref))
    fp = int(np.count_nonzero(pred & ~ref))
    fn = int(np.count_nonzero(~pred & ref))
    return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=int(pred.size) - tp - fp - fn)


def _ratio(numerator: float, denominator: float, nothing_to_find: bool) -> float:
    if denominator == 0:
        return 1.0 if nothing_to_find else 0.0
    return numerator / denominator


def segmentation_metrics(counts: ConfusionCounts) -> dict[str, float]:
    """Precision, recall, F1 and IoU of the landslide class, overall accuracy and Cohen's kappa.

    Raises:
        ValueError: the counts are empty (no pixel at all).
    """
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    n = counts.total
    if n == 0:
        raise ValueError("no pixels: metrics of an empty split are undefined")
    empty = tp + fp + fn == 0
    accuracy = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    return {
        "precision": _ratio(tp, tp + fp, empty),
        "recall": _ratio(tp, tp + fn, empty),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, empty),
        "iou": _ratio(tp, tp + fp + fn, empty),
        "accuracy": accuracy,
        # Chance agreement of 1 means both masks are constant and equal: perfect agreement.
        "kappa": 1.0 if expected == 1 else (accuracy - expected) / (1 - expected),
    }
