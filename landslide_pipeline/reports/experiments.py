"""One report per experiment: its table, plots, a qualitative panel and a Markdown page.

Each ``write_*_report`` function writes into one folder (the caller makes it atomic):
``report.md``, the plots it links, ``summary.csv``, and ``panel.png`` when predictions are given.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landslide_pipeline.layout import BY_BACKGROUND, BY_LANDSLIDE_SIZE, IMPROVEMENT_TABLE, REPORT, REPORT_SUMMARY
from landslide_pipeline.reports.markdown import MarkdownReport, MlflowLinks, runs_from_table
from landslide_pipeline.reports.panels import PanelTiles, qualitative_panel
from landslide_pipeline.reports.plots import (
    plot_architectures,
    plot_comparison,
    plot_relative_improvement,
    plot_training_size,
)


@dataclass(frozen=True)
class ExperimentReport:
    """The files of one experiment's report."""

    markdown: Path
    plots: list[Path]
    summary: pd.DataFrame


def architecture_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per architecture and split: mean and std over folds of the scores, parameter count and
    training time per fold (study B Table 1, study A's model comparison)."""
    scores = ["precision", "recall", "f1", "iou", "kappa"]
    grouped = table.groupby(["architecture", "split"])
    summary = grouped[scores].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary["parameters"] = grouped["parameters"].first()
    summary["train_seconds_per_fold"] = grouped["train_seconds"].mean()
    summary["folds"] = grouped["fold"].nunique()
    return summary.reset_index()


def write_architecture_report(table: pd.DataFrame, directory: Path, links: MlflowLinks, config: Mapping[str, Any],
                              panel: PanelTiles | None = None,
                              breakdown: tuple[pd.DataFrame, pd.DataFrame] | None = None,
                              examples: Mapping[str, Path] | None = None) -> ExperimentReport:
    """The architecture comparison: summary table, score and cost plots per split, the fold
    ensembles' test scores (rows of ``kind`` ensemble, when the table has them), each best fold
    model's test scores by landslide size and by background complexity (study B Figs. 10-12,
    ``metrics.breakdown``; ``by_landslide_size.csv``, ``by_background.csv``), example panels per
    class of those (``examples``: class name -> PNG already in ``directory``, e.g. written by
    ``panels.class_panels``; listed with the plots), a panel."""
    ensembles = table[table["kind"] == "ensemble"] if "kind" in table else table.iloc[:0]
    table = table[table["kind"] == "fold"] if "kind" in table else table
    summary = architecture_summary(table)
    summary.to_csv(directory / REPORT_SUMMARY, index=False)
    splits = [s for s in ("validation", "test") if (table["split"] == s).any()]
    plots = [plot_architectures(table, directory / f"architectures_{split}.png", split=split) for split in splits]
    report = MarkdownReport("Architecture comparison").paragraph(
        "Landslide-class scores from confusion counts summed over all pixels of each split at each model's "
        "calibrated threshold; mean and standard deviation over the folds. Validation: each fold model on its own "
        "fold (where its threshold was chosen, so slightly optimistic). Test: every fold model on the held-out "
        "test tiles.")
    if len(ensembles):
        columns = ["architecture", "members", "flips", "threshold", "precision", "recall", "f1", "kappa", "f1_argmax"]
        report.heading("Fold ensembles (held-out test tiles)").paragraph(
            "The mean probability of each architecture's fold models, at the threshold that maximises F1 over "
            "their pooled out-of-fold validation predictions.").table(ensembles[columns])
    if breakdown is not None:
        sizes, backgrounds = breakdown
        sizes.to_csv(directory / BY_LANDSLIDE_SIZE, index=False)
        backgrounds.to_csv(directory / BY_BACKGROUND, index=False)
        report.heading("By landslide size (study B, Figs. 10-11)").paragraph(
            "Each architecture's best fold model on the test tiles: a reference landslide (a connected component) "
            "is detected when half its pixels are predicted.").table(sizes)
        report.heading("By background complexity (study B, Fig. 12)").paragraph(
            "Test tiles in three equal-count classes by edge density (mean gradient of the image bands' mean); "
            "scores pooled over each class's pixels.").table(backgrounds)
    if examples:
        report.heading("Examples per class (study B, Figs. 10-12)").paragraph(
            "A few test tiles per landslide size class and of the simplest and the most complex backgrounds. "
            "Image | reference | each model's prediction: true positives yellow, false positives red, "
            "false negatives blue.")
        for name, path in examples.items():
            path = Path(path)
            # The report is published by moving its folder: a PNG elsewhere would be left behind.
            if path.parent.resolve() != Path(directory).resolve() or not path.is_file():
                raise ValueError(f"example panel {path} of {name!r} is not a file in the report folder {directory}")
            report.heading(name, level=3).image(path, f"examples: {name}")
            plots.append(path)
    return _finish(report, summary, plots, table, directory, links, config, panel)


def write_comparison_report(table: pd.DataFrame, summary: pd.DataFrame, factor: str, title: str, note: str,
                            directory: Path, links: MlflowLinks, config: Mapping[str, Any],
                            panel: PanelTiles | None = None) -> ExperimentReport:
    """A comparison of one factor (label source, input bands) per architecture."""
    summary.to_csv(directory / REPORT_SUMMARY, index=False)
    splits = [s for s in ("validation", "test") if (table["split"] == s).any()]
    plots = [plot_comparison(table, factor, directory / f"{factor}_{split}.png", split=split) for split in splits]
    return _finish(MarkdownReport(title).paragraph(note), summary, plots, table, directory, links, config, panel)


def variant_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over folds of each variant x architecture x split, with the tiles trained on."""
    scores = ["precision", "recall", "f1", "kappa"]
    grouped = table.groupby(["variant", "architecture", "split"], sort=False)
    summary = grouped[scores].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary["train_tiles"] = grouped["train_tiles"].mean()
    summary["train_seconds_per_fold"] = grouped["train_seconds"].mean()
    return summary.reset_index()


def relative_improvement(summary: pd.DataFrame, candidate: str, baseline: str) -> pd.DataFrame:
    """Study B's Fig. 9: per training-set size and split, ``candidate``'s relative change of the
    fold-mean precision, recall and F1 over ``baseline``'s: (candidate - baseline) / baseline.

    Args:
        summary: Rows of ``variant_summary`` (one per variant x architecture x split).
        candidate: The architecture whose improvement is shown (study B: LinkNet).
        baseline: The architecture it is compared with (study B: U-Net).
    """
    pivot = summary.pivot_table(index=["variant", "split"], columns="architecture",
                                values=["precision_mean", "recall_mean", "f1_mean", "train_tiles"])
    rows = pd.DataFrame({"variant": pivot.index.get_level_values(0), "split": pivot.index.get_level_values(1),
                         "train_tiles": pivot[("train_tiles", baseline)].to_numpy(),
                         "candidate": candidate, "baseline": baseline})
    for metric in ("precision", "recall", "f1"):
        base = pivot[(f"{metric}_mean", baseline)].to_numpy()
        rows[f"{metric}_{baseline}"] = base
        rows[f"{metric}_{candidate}"] = pivot[(f"{metric}_mean", candidate)].to_numpy()
        rows[f"{metric}_change"] = (rows[f"{metric}_{candidate}"] - base) / np.where(base > 0, base, np.nan)
    return rows.sort_values(["split", "train_tiles"]).reset_index(drop=True)


def compared_pair(architectures: Sequence[str]) -> tuple[str, str] | None:
    """(candidate, baseline): study B's LinkNet over U-Net when both ran, else the last two run."""
    if {"linknet", "unet"} <= set(architectures):
        return "linknet", "unet"
    return (architectures[-1], architectures[0]) if len(architectures) > 1 else None


def write_training_size_report(table: pd.DataFrame, directory: Path, links: MlflowLinks,
                               config: Mapping[str, Any]) -> ExperimentReport:
    """Study B's training-set size study: F1 against the number of training tiles, and (Fig. 9)
    one architecture's relative improvement over the other per size (``improvement.csv``)."""
    summary = variant_summary(table)
    summary.to_csv(directory / REPORT_SUMMARY, index=False)
    # Folds may hold slightly different counts under a cap they do not reach: plot each size once.
    nominal = table.assign(train_tiles=table.groupby("variant")["train_tiles"].transform("max"))
    splits = [s for s in ("validation", "test") if (table["split"] == s).any()]
    plots = [plot_training_size(nominal, directory / f"training_size_{split}.png", split=split) for split in splits]
    report = MarkdownReport("Training-set size (study B)").paragraph(
        "Each architecture trained on at most N original tiles of the other folds (with their augmented "
        "copies), drawn at random per fold; scored on the fold's validation tiles and the test tiles.")
    pair = compared_pair(list(dict.fromkeys(table["architecture"])))
    if pair is not None:
        improvement = relative_improvement(variant_summary(nominal), *pair)
        improvement.to_csv(directory / IMPROVEMENT_TABLE, index=False)
        plots += [plot_relative_improvement(improvement, directory / f"improvement_{split}.png", split)
                  for split in splits]
        report.heading(f"{pair[0]} over {pair[1]} (study B, Fig. 9)").paragraph(
            "Relative change of the fold-mean precision, recall and F1: (candidate - baseline) / baseline.").table(
            improvement)
    return _finish(report, summary, plots, table, directory, links, config, None)


def _finish(report: MarkdownReport, summary: pd.DataFrame, plots: list[Path], table: pd.DataFrame,
            directory: Path, links: MlflowLinks, config: Mapping[str, Any],
            panel: PanelTiles | None) -> ExperimentReport:
    report.heading("Summary").table(summary)
    for plot in plots:
        report.image(plot, plot.stem.replace("_", " "))
    if panel is not None:
        path = qualitative_panel(panel.images, panel.reference, panel.predictions, directory / "panel.png",
                                 panel.titles)
        report.heading("Test tiles").paragraph(
            "Image | reference | each model's prediction: true positives yellow, false positives red, "
            "false negatives blue.").image(path, "qualitative panel")
        plots = [*plots, path]
    shown = table.drop(columns=[c for c in ("mlflow_run_id",) if c in table])
    report.heading("Every fold model").table(shown).heading("Config").config(config)
    if "mlflow_run_id" in table:
        labels = [c for c in ("label_source", "bands", "architecture", "fold") if c in table]
        report.heading("MLflow runs").run_links(links, runs_from_table(table, labels))
    else:
        report.heading("MLflow").paragraph(f"This report and its table are logged as a run of experiment "
                                           f"{links.experiment_id}: {links.base_url}/#/experiments/{links.experiment_id}")
    return ExperimentReport(report.write(directory / REPORT), plots, summary)


def markdown_image(path: Path | bytes, alt: str) -> str:
    """A Markdown image with the PNG (a file, or its bytes) inlined as a data URI, for Dagster
    asset metadata (the UI cannot read files of the data folder)."""
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"
