"""Experiment plots drawn from evaluation tables (one row per architecture x fold x split).

Every function builds its own ``matplotlib.figure.Figure`` on an Agg canvas and never touches
``pyplot``, so no figure outlives the call and nothing depends on the process's backend. Scores
are summarised over folds as mean and sample standard deviation (ddof 1, as
``summarise_by_architecture``); a single fold has no spread and is drawn without an error bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from landslide_pipeline.storage import atomic_file

#: The scores of the landslide class that the studies tabulate, with their axis labels.
METRICS: dict[str, str] = {"precision": "Precision", "recall": "Recall", "f1": "F1", "kappa": "Kappa"}
DPI = 120


def require_columns(table: pd.DataFrame, columns: Sequence[str], purpose: str) -> None:
    """Raises a ValueError naming every column of ``columns`` that ``table`` lacks.

    Args:
        table: The table to check.
        columns: The columns ``purpose`` reads.
        purpose: What the columns are for, for the message.
    """
    missing = [c for c in columns if c not in table.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise ValueError(f"{purpose}: the table lacks column(s) {names} (it has {list(table.columns)})")


def select_split(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split, or a ValueError listing the splits the table holds."""
    rows = table[table["split"] == split]
    if rows.empty:
        raise ValueError(f"no rows for split {split!r} (the table holds {sorted(map(str, table['split'].unique()))})")
    return rows


def require_one_row_per(rows: pd.DataFrame, keys: list[str], purpose: str) -> None:
    """Raises a ValueError when ``keys`` do not identify rows, since averaging over folds would
    then silently mix models of different experiments (e.g. two label sources)."""
    duplicated = rows.duplicated(keys, keep=False)
    if duplicated.any():
        first = rows.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(f"{purpose}: several rows share {first}; filter the table first "
                         f"(one row per {' x '.join(keys)} is needed)")


def fold_summary(rows: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and standard deviation over folds of ``columns`` per ``by`` group, as columns
    ``<column>_mean`` and ``<column>_std`` (std 0 where a group has a single fold)."""
    summary = rows.groupby(by, sort=False)[columns].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    return summary.fillna({f"{c}_std": 0.0 for c in columns}).reset_index()


def colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colours of the tab10 palette (repeating after ten)."""
    palette = colormaps["tab10"]
    return [palette(i % 10) for i in range(n)]


def grouped_bars(ax: Axes, groups: list[str], series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Draws bars with error bars: one group per x position, one bar per series within it.

    Args:
        ax: Where to draw.
        groups: Labels of the x positions.
        series: Label -> (means, stds), each of length ``len(groups)``.
    """
    x = np.arange(len(groups))
    width = 0.8 / max(len(series), 1)
    for i, ((label, (mean, std)), colour) in enumerate(zip(series.items(), colours(len(series)))):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(x + offset, mean, width, yerr=std, capsize=3, label=label, color=colour)
    ax.set_xticks(x, groups)
    ax.axhline(0.0, color="black", linewidth=0.6)


def score_axis(ax: Axes, lowest: float) -> None:
    """Scores lie in [0, 1] (kappa down to -1): the axis shows 0..1, lower only when needed."""
    ax.set_ylim(min(0.0, lowest - 0.05), 1.05)
    ax.set_ylabel("score (mean ± std over folds)")
    ax.grid(axis="y", alpha=0.3)


def save_png(fig: Figure, path: Path) -> Path:
    """Writes ``fig`` to ``path`` (a .png) atomically and returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: plots are written as PNG; give a path ending in .png")
    FigureCanvasAgg(fig)
    with atomic_file(path) as staging:
        fig.savefig(staging, format="png", dpi=DPI)
    return path


def plot_architectures(table: pd.DataFrame, path: Path, split: str = "validation") -> Path:
    """Model comparison (study B Table 1, study A's architectures): per architecture, bars of
    precision, recall, F1 and kappa, and below them the parameter count and training time.

    Args:
        table: An EvaluationTable-shaped frame (architecture, fold, split, precision, recall, f1,
            kappa, parameters, train_seconds); one row per architecture x fold in ``split``.
        path: The PNG to write.
        split: Which split's scores to plot: "validation" (every fold's own validation tiles)
            or "test" (the held-out test tiles).

    Returns:
        ``path``.

    Raises:
        ValueError: a column is missing, the split is absent, or rows repeat an architecture x
            fold (e.g. two label sources: filter first or use ``plot_comparison``).
    """
    require_columns(table, ["architecture", "fold", "split", *METRICS, "parameters", "train_seconds"],
                    "plot_architectures")
    rows = select_split(table, split)
    require_one_row_per(rows, ["architecture", "fold"], "plot_architectures")
    summary = fold_summary(rows, ["architecture"], [*METRICS, "parameters", "train_seconds"])
    architectures = summary["architecture"].astype(str).tolist()

    fig = Figure(figsize=(max(7.0, 1.6 * len(architectures) + 3), 7.5), layout="constrained")
    axes = fig.subplot_mosaic([["scores", "scores"], ["parameters", "time"]], height_ratios=[3, 2])
    series = {label: (summary[f"{m}_mean"].to_numpy(), summary[f"{m}_std"].to_numpy()) for m, label in METRICS.items()}
    grouped_bars(axes["scores"], architectures, series)
    score_axis(axes["scores"], min(float((mean - std).min()) for mean, std in series.values()))
    # Outside the axes: scores near 1 would hide under a legend drawn inside.
    axes["scores"].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    axes["scores"].set_title(f"Landslide-class scores, {split} split ({rows['fold'].nunique()} folds)")

    # Grey, not the palette: colours in the score panel above stand for metrics.
    grey = "0.55"
    axes["parameters"].bar(architectures, summary["parameters_mean"] / 1e6, color=grey)
    axes["parameters"].set_ylabel("parameters (millions)")
    axes["parameters"].set_title("Model size")
    axes["time"].bar(architectures, summary["train_seconds_mean"], yerr=summary["train_seconds_std"],
                     capsize=3, color=grey)
    axes["time"].set_ylabel("training time per fold (s)")
    axes["time"].set_title("Training time (mean ± std over folds)")
    return save_png(fig, path)


def plot_comparison(table: pd.DataFrame, factor: str, path: Path, split: str = "validation",
                    levels: Sequence[str] | None = None) -> Path:
    """Precision, recall, F1 and kappa for each level of ``factor``, one panel per architecture:
    study A Table 6 (``factor="label_source"``: manual vs obia) and Table 7 (``factor="bands"``:
    rgb vs rgb+dem).

    Args:
        table: An EvaluationTable-shaped frame with a ``factor`` column; one row per architecture
            x level x fold in ``split``.
        factor: The column whose levels are compared.
        path: The PNG to write.
        split: Which split's scores to plot.
        levels: The levels to draw, in this order (default: every level, sorted by its text).

    Returns:
        ``path``.

    Raises:
        ValueError: a column is missing, the split or a requested level is absent, or rows
            repeat an architecture x level x fold.
    """
    require_columns(table, ["architecture", "fold", "split", factor, *METRICS], "plot_comparison")
    rows = select_split(table, split).assign(**{factor: lambda df: df[factor].astype(str)})
    require_one_row_per(rows, ["architecture", factor, "fold"], "plot_comparison")
    present = sorted(rows[factor].unique())
    levels = [str(level) for level in levels] if levels is not None else present
    absent = [level for level in levels if level not in present]
    if absent:
        raise ValueError(f"plot_comparison: {factor} has no rows for {absent} in split {split!r} (it has {present})")
    summary = fold_summary(rows[rows[factor].isin(levels)], ["architecture", factor], list(METRICS))
    architectures = list(dict.fromkeys(summary["architecture"].astype(str)))

    fig = Figure(figsize=(max(6.0, 4.2 * len(architectures)), 4.8), layout="constrained")
    axes = fig.subplots(1, len(architectures), sharey=True, squeeze=False)[0]
    lowest = float((summary[[f"{m}_mean" for m in METRICS]].to_numpy()
                    - summary[[f"{m}_std" for m in METRICS]].to_numpy()).min())
    for ax, architecture in zip(axes, architectures):
        # A level that one architecture lacks becomes NaN: no bar, rather than a KeyError.
        by_level = summary[summary["architecture"] == architecture].set_index(factor).reindex(levels)
        series = {level: (by_level.loc[level, [f"{m}_mean" for m in METRICS]].to_numpy(float),
                          by_level.loc[level, [f"{m}_std" for m in METRICS]].to_numpy(float))
                  for level in levels}
        grouped_bars(ax, list(METRICS.values()), series)
        score_axis(ax, lowest)
        ax.set_title(architecture)
        ax.label_outer()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title=factor, loc="outside right upper", fontsize="small")
    fig.suptitle(f"{factor}: {' vs '.join(levels)}, {split} split")
    return save_png(fig, path)


def plot_training_size(table: pd.DataFrame, path: Path, split: str = "validation", metric: str = "f1") -> Path:
    """Study B's training-set size study: ``metric`` (mean ± std over folds) against the number
    of training tiles, one line per architecture.

    Args:
        table: An EvaluationTable-shaped frame with a ``train_tiles`` column; one row per
            architecture x train_tiles x fold in ``split``.
        path: The PNG to write.
        split: Which split's scores to plot.
        metric: The score on the y axis.

    Returns:
        ``path``.

    Raises:
        ValueError: a column is missing, the split is absent, or rows repeat an architecture x
            train_tiles x fold.
    """
    require_columns(table, ["architecture", "fold", "split", "train_tiles", metric], "plot_training_size")
    rows = select_split(table, split)
    require_one_row_per(rows, ["architecture", "train_tiles", "fold"], "plot_training_size")
    summary = fold_summary(rows, ["architecture", "train_tiles"], [metric]).sort_values("train_tiles")
    architectures = list(dict.fromkeys(rows["architecture"].astype(str)))

    fig = Figure(figsize=(7.0, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for architecture, colour in zip(architectures, colours(len(architectures))):
        line = summary[summary["architecture"].astype(str) == architecture]
        x, mean, std = line["train_tiles"].to_numpy(), line[f"{metric}_mean"].to_numpy(), line[f"{metric}_std"].to_numpy()
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=architecture, color=colour)
    sizes = sorted(summary["train_tiles"].unique())
    if sizes[0] > 0 and sizes[-1] / sizes[0] >= 10:
        ax.set_xscale("log")  # sizes usually grow geometrically (10, 40, 160 tiles)
    ax.set_xticks(sizes, [str(size) for size in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training tiles")
    ax.set_ylabel(f"{METRICS.get(metric, metric)} (mean ± std over folds)")
    ax.set_ylim(min(0.0, float((summary[f"{metric}_mean"] - summary[f"{metric}_std"]).min()) - 0.05), 1.05)
    ax.grid(alpha=0.3)
    ax.legend(title="architecture")
    ax.set_title(f"{METRICS.get(metric, metric)} against training-set size, {split} split")
    return save_png(fig, path)


def plot_relative_improvement(improvement: pd.DataFrame, path: Path, split: str = "test") -> Path:
    """Study B's Fig. 9: one architecture's relative improvement over another per training-set
    size, grouped bars of precision, recall and F1 (in %).

    Args:
        improvement: Rows of ``reports.experiments.relative_improvement``.
        path: The PNG to write.
        split: Which split's rows to plot.

    Returns:
        ``path``.

    Raises:
        ValueError: a column is missing or the split is absent.
    """
    require_columns(improvement, ["train_tiles", "split", "candidate", "baseline"], "plot_relative_improvement")
    rows = select_split(improvement, split).sort_values("train_tiles")
    metrics = [m for m in ("precision", "recall", "f1") if f"{m}_change" in rows]
    series = {m: (100 * rows[f"{m}_change"].to_numpy(), np.zeros(len(rows))) for m in metrics}
    fig = Figure(figsize=(7.0, 4.8), layout="constrained")
    ax = fig.add_subplot()
    grouped_bars(ax, [str(int(t)) for t in rows["train_tiles"]], series)
    ax.set_xlabel("training tiles")
    ax.set_ylabel("relative change (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title(f"{rows['candidate'].iloc[0]} over {rows['baseline'].iloc[0]} ({split})")
    return save_png(fig, path)


def plot_site_history(history: pd.DataFrame, path: Path) -> Path:
    """A site's landslides over its surveys (``mapping.changes.site_history``): the mapped
    landslide area per survey above, the new, grown and gone landslides against the survey
    before below.

    Raises:
        ValueError: a column is missing or the table is empty.
    """
    require_columns(history, ["survey_id", "date", "landslide_area_m2", "n_new", "n_grown", "n_gone"],
                    "plot_site_history")
    if history.empty:
        raise ValueError("plot_site_history: no mapped survey to plot")
    labels = [f"{d}\n{s}" if isinstance(d, str) else str(s) for s, d in zip(history["survey_id"], history["date"])]
    x = np.arange(len(history))
    fig = Figure(figsize=(max(6.0, 1.4 * len(history) + 2), 6.5), layout="constrained")
    area, counts = fig.subplots(2, 1, sharex=True)
    area.plot(x, history["landslide_area_m2"], marker="o", color=colours(1)[0])
    area.set_ylabel("landslide area (m2)")
    area.set_title(f"site {history['site'].iloc[0]}" if "site" in history else "site")
    series = {"new": history["n_new"], "grown": history["n_grown"], "gone": history["n_gone"]}
    grouped_bars(counts, labels, {k: (v.fillna(0).to_numpy(), np.zeros(len(v))) for k, v in series.items()})
    counts.set_ylabel("landslides vs the survey before")
    counts.legend(fontsize="small")
    counts.set_xticks(x, labels, fontsize="small")
    return save_png(fig, path)
