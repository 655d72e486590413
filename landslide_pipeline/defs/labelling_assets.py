"""Object-oriented labels (study A) beside the manual ones, and how far the two agree.

Both assets are survey-partitioned and sit in the ``labels`` group, so the ``prepare_survey``
job builds them with the manual labels.
"""

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from landslide_pipeline.defs.automation_conditions import on_new_data
from landslide_pipeline.defs.checks import schema_failures
from landslide_pipeline.defs.concurrency import CPU_POOL, heavy_step_tags
from landslide_pipeline.defs.partitions import survey_partitions
from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.labelling.agreement import agreement_table, survey_agreement
from landslide_pipeline.labelling.rules import load_rules
from landslide_pipeline.labelling.tiles import TileMasks, label_survey_objects
from landslide_pipeline.layout import (
    GROUND_TRUTH,
    LABEL_INDEX,
    MASK_FOLDER,
    OBIA_THRESHOLDS,
    TILE_INDEX,
    DataLayout,
    LabelSource,
)
from landslide_pipeline.progress import LogProgress
from landslide_pipeline.schemas import LabelAgreement
from landslide_pipeline.storage import atomic_directory, atomic_file, fingerprint
from landslide_pipeline.surveys import open_survey

DEFAULT_RULES = "configs/obia_rules.toml"


def agreement_path(layout: DataLayout, survey_id: str) -> Path:
    """``data/agreement/<survey_id>.parquet``."""
    return layout.agreement(survey_id)


class ObiaConfig(Config):
    """Which rule file to apply, and whether manual labels may serve as samples."""

    rules_path: str = Field(DEFAULT_RULES, description="Rule file (TOML), relative to the working directory.")
    samples_from_manual: bool = Field(
        True, description="Quantile thresholds of the rules take the survey's manual labels as samples "
                          "(the default rules have none).")


@asset(partitions_def=survey_partitions, group_name="labels", kinds={"geotiff", "parquet"},
       deps=["raw_survey", "survey_tiles", "manual_labels"], code_version="1", pool=CPU_POOL, op_tags=heavy_step_tags(),
       # It follows the tiles' new data (the scene), not the survey's files (they include its
       # labels) nor the manual labels (read only when the rules take samples; the default rules
       # do not): a label edit re-tiles to the same tiles and does not re-segment the scene.
       # With sample rules, re-materialize it by hand.
       automation_condition=on_new_data(ignore=("raw_survey", "manual_labels"), same_run=False))
def obia_labels(context: AssetExecutionContext, config: ObiaConfig, data_store: DataStore) -> MaterializeResult:
    """Object-oriented landslide masks on every tile's grid, in the manual labels' layout.

    The scene is segmented at several scales, its objects described (spectral, vegetation,
    texture, shape, terrain) and classified by the rule file's hierarchy of thresholds. Writes
    ``labels.parquet`` and ``masks/`` like ``manual_labels``, plus ``segments.parquet`` (object
    outlines and features) and ``thresholds.json`` (every threshold used). It depends on
    ``manual_labels`` because manual masks serve as samples when the rules derive a threshold
    from quantiles; its automation ignores label edits (the default rules take no samples).
    """
    layout = data_store.layout
    survey_id = context.partition_key
    survey = open_survey(layout.raw_survey(survey_id))
    if survey.scene is None:
        context.log.warning(f"survey {survey_id} is a pre-cut tile data set without a scene: no object labels")
        return MaterializeResult(metadata={"labelled": False})
    index = gpd.read_parquet(layout.tiles(survey_id) / TILE_INDEX)
    rules = load_rules(Path(config.rules_path))
    reference = _manual_samples(layout, survey_id) if rules.needs_samples() and config.samples_from_manual else None
    with atomic_directory(layout.labels(LabelSource.OBIA, survey_id)) as staging:
        result = label_survey_objects(survey.scene, index, rules, staging, reference,
                                      LogProgress(f"object-oriented labels of {survey_id}", context.log.info, "windows"))
        version = DataVersion(fingerprint([layout.tiles(survey_id) / TILE_INDEX, staging / LABEL_INDEX,
                                           staging / OBIA_THRESHOLDS]))
    thresholds = pd.DataFrame(result.thresholds)
    context.log.info("thresholds used:\n" + thresholds.to_string(index=False))
    return MaterializeResult(metadata={
        "labelled": True, "n_tiles": len(result.labels), "rules": rules.source,
        "landslide_fraction": float(result.labels["landslide_fraction"].mean()),
        "n_segments": len(result.segments), "landslide_segments": int(result.segments["landslide"].sum()),
        "samples_from_manual": reference is not None,
        "thresholds": MetadataValue.md(thresholds.to_markdown(index=False, floatfmt=".4g")),
        "summary": MetadataValue.json(json.loads(json.dumps(result.summary, default=str))),
        "path": MetadataValue.path(str(layout.labels(LabelSource.OBIA, survey_id))),
    }, data_version=version)


def _manual_samples(layout: DataLayout, survey_id: str) -> TileMasks | None:
    folder = layout.labels(LabelSource.MANUAL, survey_id)
    if not (folder / LABEL_INDEX).is_file():
        return None
    return TileMasks(pd.read_parquet(folder / LABEL_INDEX), folder / MASK_FOLDER)


@asset(partitions_def=survey_partitions, group_name="labels", kinds={"pandas", "parquet"},
       deps=[obia_labels, "manual_labels"], code_version="1", automation_condition=on_new_data())
def label_agreement(context: AssetExecutionContext, data_store: DataStore) -> MaterializeResult:
    """Per survey: object-oriented labels scored against the manual ones over their common tiles
    (precision, recall, F1, IoU, accuracy, kappa), and both against the ground truth when the
    survey has one (synthetic surveys' ``ground_truth.tif``). A survey without manual labels gets
    only the ground-truth rows, or an empty table."""
    layout = data_store.layout
    survey_id = context.partition_key
    sources = {name: (pd.read_parquet(layout.labels(name, survey_id) / LABEL_INDEX), layout.labels(name, survey_id))
               for name in (LabelSource.OBIA, LabelSource.MANUAL) if (layout.labels(name, survey_id) / LABEL_INDEX).is_file()}
    truth = layout.raw_survey(survey_id) / GROUND_TRUTH
    table = agreement_table(survey_agreement(survey_id, sources, LabelSource.OBIA, LabelSource.MANUAL, truth if truth.is_file() else None))
    with atomic_file(agreement_path(layout, survey_id)) as tmp:
        table.to_parquet(tmp, index=False)
    shown = table[["source", "reference", "n_tiles", "precision", "recall", "f1", "iou", "kappa"]]
    context.log.info(f"label agreement of {survey_id}:\n" + shown.to_string(index=False))
    against_manual = table[(table["source"] == LabelSource.OBIA) & (table["reference"] == LabelSource.MANUAL)]
    return MaterializeResult(metadata={
        "rows": len(table), "table": MetadataValue.md(shown.to_markdown(index=False, floatfmt=".3f")),
        **({"obia_vs_manual_f1": float(against_manual["f1"].iloc[0])} if len(against_manual) else {}),
        "path": MetadataValue.path(str(agreement_path(layout, survey_id))),
    })


@asset_check(asset=label_agreement, blocking=True,
             description="pandera LabelAgreement schema, and an obia-vs-manual row wherever both labels exist")
def label_agreement_schema(context: AssetCheckExecutionContext, data_store: DataStore) -> AssetCheckResult:
    """Blocking check: the LabelAgreement schema, and an obia-vs-manual row wherever both labels exist."""
    layout = data_store.layout
    survey_id = context.op_execution_context.partition_key
    table = pd.read_parquet(agreement_path(layout, survey_id))
    if (failed := schema_failures(LabelAgreement, table)) is not None:
        return failed
    both = all((layout.labels(name, survey_id) / LABEL_INDEX).is_file() for name in (LabelSource.OBIA, LabelSource.MANUAL))
    compared = bool(((table["source"] == LabelSource.OBIA) & (table["reference"] == LabelSource.MANUAL)).any())
    return AssetCheckResult(passed=compared or not both, metadata={
        "rows": len(table), "both_sources": both, "obia_vs_manual_row": compared})
