"""Landslide mapping pipeline: surveys to tiles, labels, models, evaluation and maps."""
