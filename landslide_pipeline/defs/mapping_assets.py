"""Landslide maps for surveys, with the registered champion, and changes between a site's surveys.

Both assets are survey-partitioned and eager: a new survey is mapped as soon as it is ingested,
every survey is re-mapped when a new champion is registered, and changes follow their map.
"""

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AllPartitionMapping,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    asset_check,
    define_asset_job,
    schedule,
)
from pydantic import Field

from landslide_pipeline.defs.automation import CHANGE_SETS
from landslide_pipeline.defs.automation_conditions import after_upstream_settles, on_code_change, on_new_data
from landslide_pipeline.defs.concurrency import CPU_POOL, claim_cores, heavy_step_tags
from landslide_pipeline.defs.partitions import SURVEY_PARTITIONS, survey_partitions
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.layout import CHANGES_SUMMARY, MAP_QUICKLOOK, MAP_REPORT, SITE_HISTORY, SITE_HISTORY_PLOT
from landslide_pipeline.mapping import PredictionSpec, VectorizeSpec
from landslide_pipeline.mapping.changes import ChangeRules, survey_records, write_site_changes
from landslide_pipeline.mapping.changes import site_history as site_history_table
from landslide_pipeline.mapping.landslide_map import write_landslide_map
from landslide_pipeline.progress import LogProgress
from landslide_pipeline.reports.experiments import markdown_image
from landslide_pipeline.reports.plots import plot_site_history
from landslide_pipeline.reports.quicklook import thumbnail_png
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.surveys import open_survey


class MappingConfig(Config):
    """Which registered model maps, and how."""

    model_alias: str = Field("champion", description="Alias of the registered model to map with; a survey without "
                                                     "a DEM falls back to <alias>-rgb when that model needs terrain.")
    window: int = Field(512, description="Prediction window in pixels (a multiple of 32).")
    overlap: int = Field(64, description="Overlap of neighbouring windows, blended linearly.")
    threshold: float | None = Field(None, description="Landslide probability above which a pixel is mapped; "
                                                      "default: the model's calibrated threshold.")
    min_area_m2: float = Field(20.0, description="Smaller polygons are dropped.")
    simplify_m: float = Field(0.5, description="Polygon simplification tolerance in metres.")


@asset(partitions_def=survey_partitions, group_name="mapping", kinds={"pytorch", "geotiff", "geopackage"},
       deps=["raw_survey", "champion_model"], code_version="2", automation_condition=on_new_data(), pool=CPU_POOL, op_tags=heavy_step_tags(gpu=True))
def landslide_map(context: AssetExecutionContext, config: MappingConfig, data_store: DataStore,
                  mlflow_tracking: MlflowTracking) -> MaterializeResult:
    """The survey's landslide map from the registered model (alias ``champion`` by default; for a
    survey without a DEM and a champion that takes terrain, ``champion-rgb``): a probability and
    a binary mask Cloud-Optimized GeoTIFF on the survey's grid, landslide polygons (area,
    perimeter, mean probability) in a GeoPackage, and ``map.json`` naming the alias, input bands
    and model version that made them. Pre-cut tile data sets have no scene and are not mapped."""
    layout = data_store.layout
    survey_id = context.partition_key
    survey = open_survey(layout.raw_survey(survey_id))
    if survey.scene is None:
        context.log.warning(f"{survey_id} is a pre-cut tile data set: no scene to map")
        return MaterializeResult(metadata={"mapped": False})
    spec = PredictionSpec(window=config.window, overlap=config.overlap, threshold=config.threshold)
    vectorize = VectorizeSpec(min_area_m2=config.min_area_m2, simplify_m=config.simplify_m)
    alias, model_tags = mlflow_tracking.mapping_model(config.model_alias, has_dem=survey.scene.dem is not None)
    claim_cores(context)
    with tempfile.TemporaryDirectory() as download, atomic_directory(layout.map(survey_id)) as staging:
        model_dir, version, run_id = mlflow_tracking.download_model(alias, Path(download))
        context.log.info(f"mapping {survey_id} with {mlflow_tracking.registered_model_name} v{version} "
                         f"(@{alias}, {model_tags.get('label_source')} labels, inputs {model_tags.get('inputs')}, "
                         f"run {run_id})" + (f"; no DEM, so not @{config.model_alias}" if alias != config.model_alias
                                             else ""))
        provenance = {"survey_id": survey_id, "model": mlflow_tracking.registered_model_name, "alias": alias,
                      "requested_alias": config.model_alias, "version": version, "mlflow_run_id": run_id,
                      "label_source": model_tags.get("label_source"), "inputs": model_tags.get("inputs"),
                      "bands": model_tags.get("bands"), "config": config.model_dump()}
        result = write_landslide_map(survey.scene, model_dir, staging, spec, vectorize, provenance,
                                     layout.map(survey_id), LogProgress(f"mapping {survey_id}", context.log.info, "strips"))
    return MaterializeResult(metadata={
        "mapped": True, "model_version": version, "model_alias": alias, "requested_alias": config.model_alias,
        "label_source": str(model_tags.get("label_source")), "inputs": str(model_tags.get("inputs")),
        "mlflow_run_id": run_id, "mlflow_run": mlflow_tracking.run_url(run_id),
        # Inline (the UI cannot read the data folder), small enough for the event log.
        "quicklook": MetadataValue.md(markdown_image(thumbnail_png(layout.map(survey_id) / MAP_QUICKLOOK),
                                                     f"{survey_id} quicklook")),
        "report": MetadataValue.path(str(layout.map(survey_id) / MAP_REPORT)),
        "n_landslides": len(result.polygons), "landslide_area_m2": round(result.landslide_area_m2, 1),
        "landslide_fraction": result.report.landslide_fraction,
        "megapixels_per_second": result.report.megapixels_per_second,
        "path": MetadataValue.path(str(layout.map(survey_id))),
    })


class ChangeConfig(Config):
    """When a landslide counts as grown, and how much new or grown area raises the warning."""

    min_growth_m2: float = Field(50.0, description="A landslide is grown when its area gain (m2) reaches this...")
    min_growth_fraction: float = Field(0.2, description="...and its relative gain reaches this.")
    min_overlap_m2: float = Field(1.0, description="Overlap (m2) from which two surveys' polygons are one landslide.")
    alert_area_m2: float = Field(500.0, description="New + grown area (m2) above which the check warns.")


@asset(partitions_def=survey_partitions, group_name="mapping", kinds={"geopackage", "parquet"},
       # Any survey's map may be this one's previous (its site's survey before it, by date): declared
       # as every map. Which change sets a new map makes stale is exactly known from the dates, so
       # ``change_sets_sensor`` requests those, not the eager policy (which would request them all).
       deps=[AssetDep(landslide_map, partition_mapping=AllPartitionMapping())], code_version="2",
       automation_condition=on_code_change())
def landslide_changes(context: AssetExecutionContext, config: ChangeConfig, data_store: DataStore) -> MaterializeResult:
    """New, grown, stable and gone landslides since the previous survey of the same site (the
    ``site`` and ``date`` of survey.toml), as a table and a GeoPackage layer ``changes``, and a
    summary that the check ``landslide_change_alert`` turns into a warning above the alert area.
    A survey without a site, or the first of its site, has nothing to compare with."""
    layout = data_store.layout
    survey_id = context.partition_key
    rules = ChangeRules(config.min_growth_m2, config.min_growth_fraction, config.min_overlap_m2, config.alert_area_m2)
    with atomic_directory(layout.changes(survey_id)) as staging:
        summary = write_site_changes(layout, survey_id, context.instance.get_dynamic_partitions(SURVEY_PARTITIONS),
                                     rules, staging)
    context.log.info(f"changes of {survey_id} since {summary['previous']}: {summary}")
    return MaterializeResult(metadata={**{k: v for k, v in summary.items() if v is not None},
                                       "path": MetadataValue.path(str(layout.changes(survey_id)))})


@asset_check(asset=landslide_changes, description="Warns when new + grown landslide area exceeds the alert area.")
def landslide_change_alert(context: AssetCheckExecutionContext, data_store: DataStore) -> AssetCheckResult:
    """Warns when new + grown landslide area exceeds the alert area."""
    survey_id = context.op_execution_context.partition_key
    summary = json.loads((data_store.layout.changes(survey_id) / CHANGES_SUMMARY).read_text())
    flagged = summary.get("flagged_area_m2", 0.0)
    return AssetCheckResult(passed=not summary["alert"], severity=AssetCheckSeverity.WARN, metadata={
        "previous_survey": summary["previous"] or "none", "flagged_area_m2": flagged,
        "alert_area_m2": summary["alert_area_m2"], "new": summary.get("n_new", 0), "grown": summary.get("n_grown", 0)})


@asset(group_name="mapping", kinds={"pandas", "matplotlib"}, deps=[landslide_changes], code_version="1",
       automation_condition=after_upstream_settles())
def site_history(context: AssetExecutionContext, data_store: DataStore) -> MaterializeResult:
    """Per site, its landslides survey by survey in date order: landslide count and area of each
    map, and new, grown, stable and gone landslides against the survey before, as
    ``data/sites/<site>/history.csv`` and a plot, across any number of surveys."""
    layout = data_store.layout
    survey_ids = context.instance.get_dynamic_partitions(SURVEY_PARTITIONS)
    sites = sorted({r["site"] for r in survey_records(layout, survey_ids) if r.get("site")})
    tables = {}
    for site in sites:
        history = site_history_table(layout, survey_ids, site)
        if history.empty:
            continue
        with atomic_directory(layout.site(site)) as staging:
            history.to_csv(staging / SITE_HISTORY, index=False)
            plot_site_history(history, staging / SITE_HISTORY_PLOT)
        tables[site] = history
    context.log.info(f"{len(tables)} site(s) with mapped surveys: {', '.join(tables) or 'none'}")
    return MaterializeResult(metadata={"sites": len(tables), **{
        f"history_{site}": MetadataValue.md(table.to_markdown(index=False, floatfmt=".1f"))
        for site, table in tables.items()}})


change_sets = define_asset_job(CHANGE_SETS, ["landslide_changes"], description="Recompute one survey's change set.")


MAP_SURVEYS = "map_surveys"
map_surveys = define_asset_job(MAP_SURVEYS, ["landslide_map", "landslide_changes"], partitions_def=survey_partitions,
                               description="Map one survey with the champion and compare it with its site's previous survey.")


@schedule(job=map_surveys, cron_schedule="0 2 * * *", default_status=DefaultScheduleStatus.RUNNING,
          description="Nightly: re-map every survey with the current champion.")
def nightly_mapping(context: ScheduleEvaluationContext) -> Iterator[RunRequest]:
    """One run per survey, keyed by survey and day, so a day is never mapped twice."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for survey_id in context.instance.get_dynamic_partitions(SURVEY_PARTITIONS):
        yield RunRequest(run_key=f"{survey_id}:{day}", partition_key=survey_id)
