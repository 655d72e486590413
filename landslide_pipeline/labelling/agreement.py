"""Agreement between two label sources of a survey, and with a synthetic survey's ground truth.

Counts are summed over every pixel of the tiles both sources label (overlapping tiles count their
shared pixels once per tile, as the evaluation of models does) before any ratio is taken; the
metrics are those of ``landslide_pipeline.metrics`` with the reference as truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window

from landslide_pipeline.layout import MASK_FOLDER
from landslide_pipeline.metrics import ConfusionCounts, confusion_counts, segmentation_metrics


def _read_mask(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def compare_sources(survey_id: str, source: tuple[str, pd.DataFrame, Path],
                    reference: tuple[str, pd.DataFrame, Path]) -> dict[str, object]:
    """One agreement row: ``source`` scored against ``reference`` over their common tiles.

    Args:
        survey_id: The survey.
        source: (name, label table with ``tile_id``, label folder holding ``masks/``).
        reference: The same for the reference labels.

    Raises:
        ValueError: the two sources have no tile in common.
    """
    (name, table, folder), (ref_name, ref_table, ref_folder) = source, reference
    common = sorted(set(table["tile_id"]) & set(ref_table["tile_id"]))
    if not common:
        raise ValueError(f"survey {survey_id}: {name} and {ref_name} labels share no tile")
    counts = ConfusionCounts()
    for tile_id in common:
        counts += confusion_counts(_read_mask(folder / MASK_FOLDER / f"{tile_id}.tif"),
                                   _read_mask(ref_folder / MASK_FOLDER / f"{tile_id}.tif"))
    return _row(survey_id, name, ref_name, len(common), counts)


def compare_with_truth(survey_id: str, source: tuple[str, pd.DataFrame, Path], truth: Path) -> dict[str, object]:
    """One agreement row: a label source scored against a ground-truth mask of the whole scene.

    Args:
        survey_id: The survey.
        source: (name, label table with tile_id, row_off, col_off, height, width, label folder).
        truth: uint8 {0, 1} GeoTIFF on the scene's grid (synthetic surveys' ``ground_truth.tif``).
    """
    name, table, folder = source
    counts = ConfusionCounts()
    with rasterio.open(truth) as src:
        for tile in table.itertuples():
            reference = src.read(1, window=Window(tile.col_off, tile.row_off, tile.width, tile.height))
            counts += confusion_counts(_read_mask(folder / MASK_FOLDER / f"{tile.tile_id}.tif"), reference)
    return _row(survey_id, name, "ground_truth", len(table), counts)


def _row(survey_id: str, source: str, reference: str, n_tiles: int, counts: ConfusionCounts) -> dict[str, object]:
    return {
        "survey_id": survey_id, "source": source, "reference": reference, "n_tiles": n_tiles, **counts.as_dict(),
        **segmentation_metrics(counts),
        "source_fraction": (counts.tp + counts.fp) / counts.total,
        "reference_fraction": (counts.tp + counts.fn) / counts.total,
    }


_COLUMNS = {
    "survey_id": "object", "source": "object", "reference": "object", "n_tiles": "int64", "tp": "int64",
    "fp": "int64", "fn": "int64", "tn": "int64", "precision": "float64", "recall": "float64", "f1": "float64",
    "iou": "float64", "accuracy": "float64", "kappa": "float64", "source_fraction": "float64",
    "reference_fraction": "float64",
}


def agreement_table(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The rows as a table with the LabelAgreement columns and dtypes (also when empty)."""
    return pd.DataFrame(rows, columns=list(_COLUMNS)).astype(_COLUMNS)


def survey_agreement(survey_id: str, sources: dict[str, tuple[pd.DataFrame, Path]], source: str, reference: str,
                     truth: Path | None = None) -> list[dict[str, object]]:
    """The agreement rows of a survey: ``source`` against ``reference``, and each against the truth.

    Args:
        survey_id: The survey.
        sources: Label sources present for the survey: name -> (label table, label folder).
        source: The name of the source to score (e.g. "obia").
        reference: The name of the reference source (e.g. "manual").
        truth: The scene's ground-truth mask, when the survey has one (synthetic surveys).

    Returns:
        Rows for the pairs whose labels exist (none when ``source`` is absent).
    """
    rows = []
    if source in sources and reference in sources:
        rows.append(compare_sources(survey_id, (source, *sources[source]), (reference, *sources[reference])))
    if truth is not None:
        rows += [compare_with_truth(survey_id, (name, *sources[name]), truth)
                 for name in (source, reference) if name in sources]
    return rows
