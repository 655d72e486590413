"""Scores at every decision threshold, from one pass over the predictions, and the best one.

A :class:`ProbabilityHistogram` counts landslide and background reference pixels per bin of
predicted landslide probability (1,000 bins). Summed over a split, it gives the confusion counts
at any threshold without keeping a single prediction, so a threshold can be chosen on
out-of-fold validation predictions (each fold model on its own validation fold) by maximising
F1, saved with the model, and every table can show both the arg-max decision (p > 0.5) and the
calibrated one.

Bin ``i`` holds probabilities in ``(i / n, (i + 1) / n]`` (0 falls in bin 0), so a pixel is
landslide at threshold ``k / n`` exactly when ``p > k / n``: the rule the maps use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from landslide_pipeline.metrics.confusion import ConfusionCounts, segmentation_metrics

N_BINS = 1000
#: The arg-max decision of a two-class softmax.
ARGMAX_THRESHOLD = 0.5


def _bins(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int64)


@dataclass
class ProbabilityHistogram:
    """Reference landslide (``positives``) and background (``negatives``) pixels per probability bin."""

    positives: np.ndarray = field(default_factory=lambda: _bins(N_BINS))
    negatives: np.ndarray = field(default_factory=lambda: _bins(N_BINS))

    @property
    def n_bins(self) -> int:
        return len(self.positives)

    def add(self, probability: np.ndarray, reference: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Adds pixels: landslide probabilities and their reference masks (same shape); pixels where
        ``valid`` is False are left out."""
        if probability.shape != reference.shape:
            raise ValueError(f"probability shape {probability.shape} != reference shape {reference.shape}")
        p, truth = np.asarray(probability, dtype=np.float64), np.asarray(reference).astype(bool)
        if valid is not None:
            p, truth = p[valid], truth[valid]
        index = np.clip(np.ceil(p.ravel() * self.n_bins).astype(np.int64) - 1, 0, self.n_bins - 1)
        truth = truth.ravel()
        self.positives += np.bincount(index[truth], minlength=self.n_bins)
        self.negatives += np.bincount(index[~truth], minlength=self.n_bins)

    def __add__(self, other: ProbabilityHistogram) -> ProbabilityHistogram:
        return ProbabilityHistogram(self.positives + other.positives, self.negatives + other.negatives)

    @property
    def pixels(self) -> int:
        return int(self.positives.sum() + self.negatives.sum())

    def counts_at(self, threshold: float) -> ConfusionCounts:
        """Confusion counts when pixels with probability above ``threshold`` are landslide."""
        k = self._edge(threshold)
        tp, fn = int(self.positives[k:].sum()), int(self.positives[:k].sum())
        fp, tn = int(self.negatives[k:].sum()), int(self.negatives[:k].sum())
        return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=tn)

    def best_threshold(self) -> tuple[float, ConfusionCounts]:
        """The threshold (a bin edge in (0, 1)) with the highest F1, the lowest one on ties, and its counts.

        Raises:
            ValueError: an empty histogram.
        """
        if self.pixels == 0:
            raise ValueError("no pixels: cannot choose a threshold")
        tp = np.cumsum(self.positives[::-1])[::-1]  # tp[k]: positives predicted at threshold k / n
        fp = np.cumsum(self.negatives[::-1])[::-1]
        fn = self.positives.sum() - tp
        denominator = 2 * tp + fp + fn
        f1 = np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
        f1[0] = -1.0  # threshold 0 would call every pixel landslide: not a decision rule
        k = int(np.argmax(f1))
        threshold = k / self.n_bins
        return threshold, self.counts_at(threshold)

    def _edge(self, threshold: float) -> int:
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be within (0, 1), got {threshold}")
        return int(round(threshold * self.n_bins))

    def to_dict(self) -> dict[str, list[int]]:
        return {"positives": self.positives.tolist(), "negatives": self.negatives.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[int]]) -> ProbabilityHistogram:
        return cls(np.asarray(data["positives"], dtype=np.int64), np.asarray(data["negatives"], dtype=np.int64))


def decision_scores(histogram: ProbabilityHistogram, threshold: float) -> dict[str, float | int]:
    """Counts and metrics at the calibrated ``threshold``, plus precision, recall, F1 and kappa of
    the arg-max decision (``*_argmax``), as one table row's worth of columns."""
    calibrated = histogram.counts_at(threshold)
    argmax = segmentation_metrics(histogram.counts_at(ARGMAX_THRESHOLD))
    return {**calibrated.as_dict(), **segmentation_metrics(calibrated), "threshold": threshold,
            **{f"{name}_argmax": argmax[name] for name in ("precision", "recall", "f1", "kappa")}}
