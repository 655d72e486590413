"""pandera models of every table the pipeline writes."""

from __future__ import annotations

from typing import TypedDict

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class TileIndex(pa.DataFrameModel):
    """One row per tile of a survey (geometry column checked by geopandas, not here).

    Tiles of a pre-cut data set have no place in a scene: ``row_off = col_off = -1``, and the
    optional ``source``, ``source_row_off`` and ``source_col_off`` say which data set tile, and
    where in it, a tile was cut from. A label table adds ``landslide_fraction``.
    """

    survey_id: Series[str]
    tile_id: Series[str] = pa.Field(str_matches=r"^[A-Za-z0-9_.-]+$")
    row_off: Series[int] = pa.Field(ge=-1)
    col_off: Series[int] = pa.Field(ge=-1)
    height: Series[int] = pa.Field(gt=0)
    width: Series[int] = pa.Field(gt=0)
    nodata_fraction: Series[float] = pa.Field(ge=0, le=1)
    source: Series[str] | None
    source_row_off: Series[int] | None = pa.Field(ge=0)
    source_col_off: Series[int] | None = pa.Field(ge=0)
    landslide_fraction: Series[float] | None = pa.Field(ge=0, le=1)

    class Config:
        unique = ["survey_id", "tile_id"]

    @pa.dataframe_check(error="row_off and col_off must be both -1 (unplaced tile) or both >= 0")
    def placed_or_not(cls, df: pd.DataFrame) -> pd.Series:
        return (df["row_off"] < 0) == (df["col_off"] < 0)


class FoldAssignment(pa.DataFrameModel):
    """Which cross-validation fold each labelled tile belongs to."""

    survey_id: Series[str]
    tile_id: Series[str]
    fold: Series[int] = pa.Field(ge=-1)  # -1: the held-out test split
    group: Series[str]
    landslide_fraction: Series[float] = pa.Field(ge=0, le=1)

    class Config:
        unique = ["survey_id", "tile_id"]


class _Bounds(TypedDict):
    ge: float
    le: float


# A TypedDict, not a plain dict: mypy checks each unpacked key against its own pa.Field parameter.
_unit: _Bounds = {"ge": 0.0, "le": 1.0}


class ScoredModels(pa.DataFrameModel):
    """Columns shared by every table of scored models: one row per model and split, with the
    confusion counts summed over the split's pixels at the model's calibrated ``threshold``, the
    metrics derived from them and the model's training facts."""

    architecture: Series[str]
    fold: Series[int] = pa.Field(ge=0)
    threshold: Series[float] = pa.Field(gt=0.0, lt=1.0)
    split: Series[str] = pa.Field(isin=["validation", "test"])
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


class EvaluationTable(ScoredModels):
    """Landslide-class scores of each model (label source x variant: architecture and input set)
    x fold (``kind`` fold) on its validation fold and on the held-out test split, and of each
    model's fold ensemble (``kind`` ensemble, ``fold`` -1, test split only), scored against the
    ``reference`` label source (the manual masks when there are any) at the model's calibrated
    threshold, with the arg-max decision's scores beside them. The label-source comparison holds
    the rows of the variants trained on two or more label sources."""

    kind: Series[str] = pa.Field(isin=["fold", "ensemble"])
    fold: Series[int] = pa.Field(ge=-1)
    best_epoch: Series[int] = pa.Field(ge=0)
    precision_argmax: Series[float] = pa.Field(**_unit)
    recall_argmax: Series[float] = pa.Field(**_unit)
    f1_argmax: Series[float] = pa.Field(**_unit)
    kappa_argmax: Series[float] = pa.Field(ge=-1.0, le=1.0)
    flips: Series[bool]
    members: Series[int] = pa.Field(ge=1)
    label_source: Series[str] = pa.Field(isin=["manual", "obia", "union"])
    inputs: Series[str]  # the input set (training.inputs); ``architecture`` holds the variant key
    reference: Series[str]
    mlflow_run_id: Series[str]

    class Config:
        strict = True
        unique = ["label_source", "architecture", "kind", "fold", "split"]

    @pa.dataframe_check(error="a fold model has a fold >= 0, one member and a best epoch >= 1; an ensemble fold -1, "
                              "several members, and test rows only")
    def kinds_are_consistent(cls, df: pd.DataFrame) -> pd.Series:
        fold = (df["kind"] == "fold") & (df["fold"] >= 0) & (df["members"] == 1) & (df["best_epoch"] >= 1)
        ensemble = (df["kind"] == "ensemble") & (df["fold"] == -1) & (df["members"] > 1) & (df["split"] == "test")
        return fold | ensemble

    @pa.dataframe_check(error="every architecture and split must have the same, complete set of folds 0..k-1")
    def every_fold_present(cls, df: pd.DataFrame) -> bool:
        folds = df[df["kind"] == "fold"]
        if folds.empty or not (folds["split"] == "validation").any():
            return False
        expected = set(range(int(folds["fold"].max()) + 1))
        groups = folds.groupby(["label_source", "architecture", "split"])["fold"].agg(list)
        return all(set(f) == expected for f in groups)


class ArchitectureSummary(pa.DataFrameModel):
    """Scores per architecture and split, aggregated over folds (mean and sample std)."""

    architecture: Series[str]
    split: Series[str] = pa.Field(isin=["validation", "test"])
    precision_mean: Series[float] = pa.Field(**_unit)
    recall_mean: Series[float] = pa.Field(**_unit)
    f1_mean: Series[float] = pa.Field(**_unit)
    iou_mean: Series[float] = pa.Field(**_unit)
    kappa_mean: Series[float] = pa.Field(ge=-1.0, le=1.0)
    f1_std: Series[float] = pa.Field(ge=0.0, nullable=True)  # NaN for a single fold
    parameters: Series[int] = pa.Field(gt=0)
    train_seconds_per_fold: Series[float] = pa.Field(ge=0)
    folds: Series[int] = pa.Field(ge=1)

    class Config:
        unique = ["architecture", "split"]


class ExperimentTable(ScoredModels):
    """Scores of every variant x architecture x fold model of an experiment (input bands,
    training-set size), on its validation fold and on the held-out test split."""

    variant: Series[str]
    bands: Series[str]
    train_tiles: Series[int] = pa.Field(gt=0)

    class Config:
        strict = True
        unique = ["variant", "architecture", "fold", "split"]

    @pa.dataframe_check(error="every variant, architecture and split must have the same folds 0..k-1")
    def every_fold_present(cls, df: pd.DataFrame) -> bool:
        if df.empty:
            return False
        expected = set(range(int(df["fold"].max()) + 1))
        return all(set(f) == expected for f in df.groupby(["variant", "architecture", "split"])["fold"].agg(list))


class ObiaSegments(pa.DataFrameModel):
    """Objects of the classified scale of object-oriented labelling, one row per segment.

    Feature columns depend on the image's bands (``mean_<band>``, ``std_<band>``,
    ``ratio_<band>``); terrain features are NaN without a DEM, texture where an object has no
    pixel pair. The geometry column is checked by geopandas, not here.
    """

    segment_id: Series[int] = pa.Field(ge=0, unique=True)
    scale: Series[float] = pa.Field(gt=0)
    n_pixels: Series[int] = pa.Field(gt=0)
    area_m2: Series[float] = pa.Field(gt=0)
    brightness: Series[float] = pa.Field(ge=0, le=255)
    std_bands: Series[float] = pa.Field(alias=r"^std_.+", regex=True, ge=0, nullable=True)
    ratio_bands: Series[float] = pa.Field(alias=r"^ratio_.+", regex=True, ge=0, le=1)
    vegetation: Series[float] = pa.Field(nullable=True)
    glcm_contrast: Series[float] = pa.Field(ge=0, nullable=True)
    glcm_homogeneity: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    glcm_entropy: Series[float] = pa.Field(ge=0, nullable=True)
    compactness: Series[float] = pa.Field(gt=0, le=1)
    elongation: Series[float] = pa.Field(ge=1)
    mean_slope: Series[float] = pa.Field(ge=0, le=90, nullable=True)
    relief: Series[float] = pa.Field(ge=0, nullable=True)
    elevation_diff: Series[float] = pa.Field(nullable=True)
    sample_fraction: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    label_class: Series[str] = pa.Field(alias="class")
    landslide: Series[bool]


class LabelAgreement(pa.DataFrameModel):
    """Agreement of a label source with a reference per survey (landslide class, pixel counts)."""

    survey_id: Series[str]
    source: Series[str]
    reference: Series[str]
    n_tiles: Series[int] = pa.Field(gt=0)
    tp: Series[int] = pa.Field(ge=0)
    fp: Series[int] = pa.Field(ge=0)
    fn: Series[int] = pa.Field(ge=0)
    tn: Series[int] = pa.Field(ge=0)
    precision: Series[float] = pa.Field(ge=0.0, le=1.0)
    recall: Series[float] = pa.Field(ge=0.0, le=1.0)
    f1: Series[float] = pa.Field(ge=0.0, le=1.0)
    iou: Series[float] = pa.Field(ge=0.0, le=1.0)
    accuracy: Series[float] = pa.Field(ge=0.0, le=1.0)
    kappa: Series[float] = pa.Field(ge=-1.0, le=1.0)
    source_fraction: Series[float] = pa.Field(ge=0.0, le=1.0)
    reference_fraction: Series[float] = pa.Field(ge=0.0, le=1.0)

    class Config:
        strict = True
        unique = ["survey_id", "source", "reference"]

    @pa.dataframe_check(error="a source cannot be its own reference")
    def distinct_sources(cls, df: pd.DataFrame) -> pd.Series:
        return df["source"] != df["reference"]

    @pa.dataframe_check(error="f1 must equal 2 tp / (2 tp + fp + fn) where that is defined")
    def f1_matches_counts(cls, df: pd.DataFrame) -> pd.Series:
        denominator = 2 * df["tp"] + df["fp"] + df["fn"]
        expected = (2 * df["tp"] / denominator.where(denominator > 0)).fillna(df["f1"])
        return (expected - df["f1"]).abs() < 1e-9
