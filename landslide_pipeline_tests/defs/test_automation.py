"""The survey sensor and declarative automation, on small generated surveys."""

import json

import dagster as dg
import pytest

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.automation import new_survey_sensor
from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.settings import PipelineSettings, StorageSettings
from landslide_pipeline.surveys.arrivals import READY_MARKER
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey

SURVEY_ASSETS = ["raw_survey", "survey_tiles", "manual_labels", "obia_labels", "label_agreement"]


def sensor_result(instance, root, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"data_store": DataStore(root=str(root))})
    return new_survey_sensor(context)


def test_sensor_adds_and_ingests_only_ready_surveys_once(tmp_path):
    layout = DataLayout(tmp_path)
    for survey_id in ("pit_a", "pit_b"):
        layout.raw_survey(survey_id).mkdir(parents=True)
    (layout.raw_survey("pit_a") / READY_MARKER).touch()  # pit_b is still being copied
    instance = dg.DagsterInstance.ephemeral()
    first = sensor_result(instance, tmp_path)
    assert [r.partition_key for r in first.run_requests] == ["pit_a"]
    assert [r.partition_keys for r in first.dynamic_partitions_requests] == [["pit_a"]]
    instance.add_dynamic_partitions("survey", ["pit_a"])
    again = sensor_result(instance, tmp_path, first.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []
    (layout.raw_survey("pit_b") / READY_MARKER).touch()
    later = sensor_result(instance, tmp_path, again.cursor)
    assert [r.partition_key for r in later.run_requests] == ["pit_b"]
    assert set(json.loads(later.cursor)["seen"]) == {"pit_a", "pit_b"}


def test_sensor_logs_each_skipped_folder_once_and_keeps_older_cursors(tmp_path, capfd):
    layout = DataLayout(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / READY_MARKER).touch()
    layout.raw.mkdir(parents=True)
    (layout.raw / "linked").symlink_to(outside, target_is_directory=True)
    (layout.raw / "bad name").mkdir()
    (layout.raw / "bad name" / READY_MARKER).touch()
    instance = dg.DagsterInstance.ephemeral()
    first = sensor_result(instance, tmp_path, json.dumps({"pit_old": 1}))  # a cursor from before skipped folders
    assert first.run_requests == []
    assert json.loads(first.cursor) == {"seen": {"pit_old": 1}, "skipped": ["bad name", "linked"]}
    warnings = [line for line in capfd.readouterr().err.splitlines() if "skipping" in line]
    assert len(warnings) == 2 and any("outside" in w for w in warnings)  # the sensor's log goes to stderr
    sensor_result(instance, tmp_path, first.cursor)
    assert not [line for line in capfd.readouterr().err.splitlines() if "skipping" in line]


def test_sensor_and_automation_sensor_run_by_default():
    defs = build_definitions(PipelineSettings())
    for name in ("new_survey_sensor", "survey_automation"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


@pytest.fixture(scope="module")
def two_surveys(tmp_path_factory):
    root = tmp_path_factory.mktemp("automation")
    layout = DataLayout(root / "data")
    for seed, survey_id in enumerate(("pit_a", "pit_b")):
        generate_survey(layout.raw_survey(survey_id), SyntheticSurveySpec(size_px=256, n_landslides=3, seed=seed))
    defs = build_definitions(PipelineSettings(), StorageSettings(str(layout.root), f"sqlite:///{root}/mlflow.db",
                                                                 str(root / "artifacts")))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("survey", ["pit_a", "pit_b"])
    job = defs.resolve_job_def("prepare_survey")
    config = {"ops": {"survey_tiles": {"config": {"tile_size": 64}}}}
    for survey_id in ("pit_a", "pit_b"):
        assert job.execute_in_process(run_config=config, instance=instance, partition_key=survey_id).success
    return defs, instance, config


def requested(result) -> dict[str, set[str]]:
    keys = {}
    for name in SURVEY_ASSETS:
        partitions = result.get_requested_partitions(dg.AssetKey(name))
        if partitions:
            keys[name] = set(partitions)
    return keys


def test_re_tiling_one_survey_requests_only_that_surveys_downstream_partitions(two_surveys):
    defs, instance, config = two_surveys
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(baseline) == {}  # everything is up to date
    retile = dg.define_asset_job("retile", dg.AssetSelection.assets("survey_tiles"),
                                 partitions_def=defs.resolve_assets_def("survey_tiles").partitions_def)
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[retile])).resolve_job_def("retile")
    assert job.execute_in_process(run_config=config, instance=instance, partition_key="pit_a").success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor)
    # The parents and, in the same tick, what depends on them: all of pit_a, nothing of pit_b.
    assert requested(after) == {"manual_labels": {"pit_a"}, "obia_labels": {"pit_a"}, "label_agreement": {"pit_a"}}
