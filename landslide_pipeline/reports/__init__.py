"""Experiment reporting: plots, qualitative panels and Markdown reports (no Dagster here)."""

from landslide_pipeline.reports.markdown import MarkdownReport, MlflowLinks, runs_from_table
from landslide_pipeline.reports.panels import pick_panel_tiles, qualitative_panel
from landslide_pipeline.reports.plots import plot_architectures, plot_comparison, plot_training_size

__all__ = [
    "MarkdownReport", "MlflowLinks", "pick_panel_tiles", "plot_architectures", "plot_comparison",
    "plot_training_size", "qualitative_panel", "runs_from_table",
]
