"""pandera models of every table the pipeline writes."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class TileIndex(pa.DataFrameModel):
    """One row per tile of a survey (geometry column checked by geopandas, not here)."""

    survey_id: Series[str]
    tile_id: Series[str] = pa.Field(str_matches=r"^r\d{6}_c\d{6}$")
    row_off: Series[int] = pa.Field(ge=0)
    col_off: Series[int] = pa.Field(ge=0)
    height: Series[int] = pa.Field(gt=0)
    width: Series[int] = pa.Field(gt=0)
    nodata_fraction: Series[float] = pa.Field(ge=0, le=1)

    class Config:
        unique = ["survey_id", "tile_id"]


class FoldAssignment(pa.DataFrameModel):
    """Which cross-validation fold each labelled tile belongs to."""

    survey_id: Series[str]
    tile_id: Series[str]
    fold: Series[int] = pa.Field(ge=-1)  # -1: the held-out test split
    group: Series[str]
    landslide_fraction: Series[float] = pa.Field(ge=0, le=1)

    class Config:
        unique = ["survey_id", "tile_id"]


_unit = dict(ge=0.0, le=1.0)


class EvaluationTable(pa.DataFrameModel):
    """Landslide-class scores of each architecture x fold model on its validation fold and on the
    held-out test split."""

    architecture: Series[str]
    fold: Series[int] = pa.Field(ge=0)
    split: Series[str] = pa.Field(isin=["validation", "test"])
    label_source: Series[str]
    n_tiles: Series[int] = pa.Field(gt=0)
    tp: Series[int] = pa.Field(ge=0)
    fp: Series[int] = pa.Field(ge=0)
    fn: Series[int] = pa.Field(ge=0)
    tn: Series[int] = pa.Field(ge=0)
    precision: Series[float] = pa.Field(**_unit)
    recall: Series[float] = pa.Field(**_unit)
    f1: Series[float] = pa.Field(**_unit)
    iou: Series[float] = pa.Field(**_unit)
    accuracy: Series[float] = pa.Field(**_unit)
    kappa: Series[float] = pa.Field(ge=-1.0, le=1.0)
    best_epoch: Series[int] = pa.Field(ge=1)
    train_seconds: Series[float] = pa.Field(ge=0)
    parameters: Series[int] = pa.Field(gt=0)
    mlflow_run_id: Series[str]

    class Config:
        strict = True
        unique = ["architecture", "fold", "split"]

    @pa.dataframe_check(error="every architecture and split must have the same, complete set of folds 0..k-1")
    def every_fold_present(cls, df: pd.DataFrame) -> bool:
        if df.empty or not (df["split"] == "validation").any():
            return False
        expected = set(range(int(df["fold"].max()) + 1))
        return all(set(folds) == expected for folds in df.groupby(["architecture", "split"])["fold"].agg(list))
