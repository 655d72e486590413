"""Orchestration only: assets, checks, partitions, jobs and resources."""

from __future__ import annotations

from dagster import AssetChecksDefinition, Definitions

from landslide_pipeline.defs.automation import change_sets_sensor, ingest_survey, new_survey_sensor, survey_automation
from landslide_pipeline.defs.concurrency import build_executor
from landslide_pipeline.defs.evaluation_assets import build_evaluation_assets
from landslide_pipeline.defs.experiment_assets import build_experiment_assets
from landslide_pipeline.defs.jobs import build_jobs
from landslide_pipeline.defs.labelling_assets import label_agreement, label_agreement_schema, obia_labels
from landslide_pipeline.defs.mapping_assets import (
    change_sets,
    landslide_change_alert,
    landslide_changes,
    landslide_map,
    map_surveys,
    nightly_mapping,
    site_history,
)
from landslide_pipeline.defs.partitions import model_partitions
from landslide_pipeline.defs.report_assets import build_report_assets
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.defs.survey_assets import manual_labels, raw_survey, survey_tiles
from landslide_pipeline.defs.training_assets import build_training_assets
from landslide_pipeline.layout import LabelSource
from landslide_pipeline.settings import (
    DEFAULT_EXECUTION,
    DEFAULT_STORAGE,
    ExecutionSettings,
    PipelineSettings,
    StorageSettings,
)


def build_definitions(settings: PipelineSettings, storage: StorageSettings = DEFAULT_STORAGE,
                      execution: ExecutionSettings = DEFAULT_EXECUTION) -> Definitions:
    """The project's Definitions for the given partition settings, storage locations and executor."""
    definitions = [
        raw_survey, survey_tiles, manual_labels, obia_labels, label_agreement, label_agreement_schema,
        *(a for source in LabelSource.ALL for a in build_training_assets(settings, source)),
        *build_evaluation_assets(settings), *build_report_assets(settings), *build_experiment_assets(settings),
        landslide_map, landslide_changes, landslide_change_alert, site_history,
    ]
    return Definitions(
        assets=[d for d in definitions if not isinstance(d, AssetChecksDefinition)],
        asset_checks=[d for d in definitions if isinstance(d, AssetChecksDefinition)],
        schedules=[nightly_mapping],
        jobs=[*build_jobs(model_partitions(settings)), ingest_survey, map_surveys, change_sets],
        sensors=[new_survey_sensor, survey_automation, change_sets_sensor],
        executor=build_executor(execution),
        resources={
            "data_store": DataStore(root=storage.data_dir),
            "mlflow_tracking": MlflowTracking(tracking_uri=storage.tracking_uri, artifact_root=storage.artifact_root,
                                             data_root=storage.data_dir),
        },
    )
