"""Hands-free operation: a sensor for arriving surveys, and declarative automation of the whole chain.

- ``new_survey_sensor`` (running by default) watches ``data/raw/``. For every folder with a
  ``READY`` marker (see ``surveys/arrivals.py``) that is new, or whose marker was touched since, it
  adds the survey as a dynamic partition and requests ``ingest_survey`` (``raw_survey``) for it.
- ``change_sets_sensor`` (running by default) follows new maps: for each survey mapped since its
  last tick it requests exactly the change sets that map makes stale, its own and its site's next
  survey's (``mapping.changes.affected_change_sets``), so a survey arriving out of date order
  re-compares its successor too.
- Every asset carries an automation condition (``defs.automation_conditions``: data versions,
  not re-materializations; a retraining window for the training chain), which the automation
  sensor ``survey_automation`` (running by default) evaluates.
"""

import json

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)

from landslide_pipeline.defs.partitions import SURVEY_PARTITIONS, survey_partitions
from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.layout import MAP_FACTS
from landslide_pipeline.mapping.changes import affected_change_sets, survey_records
from landslide_pipeline.surveys.arrivals import find_arrivals, surveys_to_run

INGEST_SURVEY = "ingest_survey"
#: The job of one survey's change set (``defs.mapping_assets``), requested by ``change_sets_sensor``.
CHANGE_SETS = "change_sets"


ingest_survey = define_asset_job(INGEST_SURVEY, AssetSelection.assets("raw_survey"), partitions_def=survey_partitions,
                                 description="Validate one arrived survey; automation does the rest.")


@sensor(job=ingest_survey, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Adds each survey folder of data/raw that has a READY marker as a partition and ingests it; "
                    "touching READY again re-ingests it.")
def new_survey_sensor(context: SensorEvaluationContext, data_store: DataStore) -> SensorResult:
    """Adds a survey partition and requests its ingestion for each new or changed folder with a
    READY marker; logs each marked folder it skips (an invalid id, a link out of data/raw) once."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, int] = cursor.get("seen", {}) if "seen" in cursor else cursor  # older cursors: seen only
    arrivals = find_arrivals(data_store.layout.raw)
    for name in sorted(set(arrivals.skipped) - set(cursor.get("skipped", []))):
        context.log.warning(f"skipping {data_store.layout.raw / name}: {arrivals.skipped[name]}")
    due = surveys_to_run(arrivals.ready, seen)
    known = set(context.instance.get_dynamic_partitions(SURVEY_PARTITIONS))
    new = [survey_id for survey_id in due if survey_id not in known]
    return SensorResult(
        run_requests=[RunRequest(run_key=f"{s}:{arrivals.ready[s]}", partition_key=s) for s in due],
        dynamic_partitions_requests=[survey_partitions.build_add_request(new)] if new else [],
        cursor=json.dumps({"seen": {**seen, **{s: arrivals.ready[s] for s in due}},
                           "skipped": sorted(arrivals.skipped)}),
    )


survey_automation = AutomationConditionSensorDefinition(
    "survey_automation", target=AssetSelection.all(), default_status=DefaultSensorStatus.RUNNING,
    description="Materializes the survey-partitioned assets whose upstream partition changed.")


@sensor(job_name=CHANGE_SETS, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Requests the change sets each new landslide map makes stale: its survey's and its site's "
                    "next survey's.")
def change_sets_sensor(context: SensorEvaluationContext, data_store: DataStore) -> SensorResult:
    """One ``change_sets`` run per change set made stale by the maps materialized since the cursor."""
    after = int(context.cursor) if context.cursor else None
    events = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("landslide_map"), after_storage_id=after), limit=1000, ascending=True)
    if not events.records:
        return SensorResult(cursor=context.cursor)
    mapped = {r.asset_materialization.partition for r in events.records
              if r.asset_materialization is not None and r.asset_materialization.partition}
    layout = data_store.layout
    records = survey_records(layout, context.instance.get_dynamic_partitions(SURVEY_PARTITIONS))
    due = [s for s in affected_change_sets(records, mapped) if (layout.map(s) / MAP_FACTS).is_file()]
    last = events.records[-1].storage_id
    return SensorResult(run_requests=[RunRequest(run_key=f"{s}:{last}", partition_key=s) for s in due],
                        cursor=str(last))
