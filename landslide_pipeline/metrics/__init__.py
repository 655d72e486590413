"""Confusion-matrix metrics and calibrated decision thresholds."""

from landslide_pipeline.metrics.confusion import ConfusionCounts, confusion_counts, segmentation_metrics

__all__ = ["ConfusionCounts", "confusion_counts", "segmentation_metrics"]
