"""The survey sensor and declarative automation, on small generated surveys."""

import json
from pathlib import Path

import dagster as dg
import pytest

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.automation import new_survey_sensor
from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.defs.runner import prepare_surveys, run_assets
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
    tiles = {"survey_tiles": {"tile_size": 64}}
    assert all(r.success for r in prepare_surveys(defs, instance, ["pit_a", "pit_b"], tiles))
    return defs, instance, tiles


def requested(result) -> dict[str, set[str]]:
    keys = {}
    for name in SURVEY_ASSETS:
        partitions = result.get_requested_partitions(dg.AssetKey(name))
        if partitions:
            keys[name] = set(partitions)
    return keys


def run_job(defs, instance, assets, partition_key, config=None):
    assert run_assets(defs, instance, assets, config or {}, partition_key).success


def test_re_tiling_one_survey_differently_requests_only_that_surveys_downstream_partitions(two_surveys):
    defs, instance, config = two_surveys
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert requested(baseline) == {}  # everything is up to date
    run_job(defs, instance, ["survey_tiles"], "pit_a", config)  # the same tiles: the same data version
    same = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor)
    assert requested(same) == {}
    run_job(defs, instance, ["survey_tiles"], "pit_a", {"survey_tiles": {"tile_size": 128}})
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=same.cursor)
    # New tiles, new data version: what depends on them, in the same tick; nothing of pit_b. (A label
    # edit does not re-segment: obia_labels reacts to the tiles, not to the manual labels.)
    assert requested(after) == {"manual_labels": {"pit_a"}, "obia_labels": {"pit_a"}, "label_agreement": {"pit_a"}}


def test_re_ingesting_identical_files_requests_nothing(two_surveys):
    defs, instance, _ = two_surveys
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    run_job(defs, instance, ["raw_survey"], "pit_b")
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor)
    assert after.total_requested == 0


def test_a_code_version_bump_of_tiling_requests_the_tiles_and_their_dependants_only(two_surveys):
    defs, instance, _ = two_surveys
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    bumped = defs.map_resolved_asset_specs(func=lambda spec: spec.replace_attributes(code_version="bumped"),
                                  selection=dg.AssetSelection.assets("survey_tiles"))
    after = dg.evaluate_automation_conditions(defs=bumped, instance=instance, cursor=baseline.cursor)
    both = {"pit_a", "pit_b"}
    # obia_labels waits for the tiles' new data: the expensive segmentation re-runs only if they changed.
    assert requested(after) == {name: both for name in ("survey_tiles", "manual_labels", "label_agreement")}
    assert not after.get_requested_partitions(dg.AssetKey("training_set"))  # it waits for the window


def test_the_training_set_waits_for_the_retraining_window_then_runs_once(two_surveys):
    import datetime as dt

    defs, instance, config = two_surveys
    night = dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC)
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=night)
    run_job(defs, instance, ["manual_labels"], "pit_a", {"manual_labels": {"seed": 1, "keep_empty_fraction": 0.5}})
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor,
                                               evaluation_time=night + dt.timedelta(minutes=30))
    assert not before.get_requested_partitions(dg.AssetKey("training_set"))  # new labels, but not yet
    window = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor,
                                               evaluation_time=night + dt.timedelta(hours=1, minutes=1))
    assert window.get_requested_partitions(dg.AssetKey("training_set")) == {None} or \
        window.get_num_requested(dg.AssetKey("training_set")) == 1
    later = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=window.cursor,
                                              evaluation_time=night + dt.timedelta(hours=1, minutes=5))
    assert later.get_num_requested(dg.AssetKey("training_set")) == 0  # requested once per window


def test_every_asset_reacts_to_change_and_every_heavy_step_is_in_the_cpu_pool():
    defs = build_definitions(PipelineSettings())
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).automation_condition is not None, key
    heavy = {"survey_tiles", "obia_labels", "trained_model", "obia_trained_model", "union_trained_model",
             "fold_ensembles", "evaluation_table", "architecture_comparison", "label_source_comparison",
             "landslide_map", "band_comparison", "training_size_study"}
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).pools == {"cpu"}} == heavy


def test_the_shipped_instance_queues_runs_and_gives_the_cpu_pool_one_slot(tmp_path):
    import shutil

    from landslide_pipeline.demo import INSTANCE_CONFIG

    shutil.copyfile(INSTANCE_CONFIG, tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1 and pools.pool_granularity.value == "run"  # one heavy run at a time
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4


def test_a_late_surveys_map_requests_its_own_and_its_successors_change_sets(tmp_path):
    from landslide_pipeline.defs.automation import change_sets_sensor

    layout = DataLayout(tmp_path)
    dates = {"pit_a": "2024-06-01", "pit_c": "2026-06-01", "pit_b": "2025-06-01", "valley": "2025-01-01"}
    for survey_id, date in dates.items():
        layout.survey_metadata(survey_id).parent.mkdir(parents=True, exist_ok=True)
        site = "valley" if survey_id == "valley" else "pit"
        layout.survey_metadata(survey_id).write_text(json.dumps({"survey_id": survey_id, "site": site, "date": date}))
        layout.map(survey_id).mkdir(parents=True)
        (layout.map(survey_id) / "map.json").write_text("{}")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("survey", list(dates))

    def tick(cursor):
        context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                          resources={"data_store": DataStore(root=str(tmp_path))})
        return change_sets_sensor(context)

    idle = tick(None)
    assert idle.run_requests == []
    instance.report_runless_asset_event(dg.AssetMaterialization("landslide_map", partition="pit_b"))
    late = tick(idle.cursor)
    # pit_b arrived after pit_c: its own change set, and pit_c's, whose previous survey it now is.
    assert sorted(r.partition_key for r in late.run_requests) == ["pit_b", "pit_c"]
    assert tick(late.cursor).run_requests == []  # each map once
    instance.report_runless_asset_event(dg.AssetMaterialization("landslide_map", partition="valley"))
    assert [r.partition_key for r in tick(late.cursor).run_requests] == ["valley"]


def test_a_label_edit_requests_that_surveys_labels_then_one_retraining_and_nothing_of_the_other(two_surveys):
    import datetime as dt

    import geopandas as gpd

    defs, instance, config = two_surveys
    layout = DataLayout(Path(_data_root(defs)))
    night = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)
    run_job(defs, instance, SURVEY_ASSETS[1:], "pit_a", config)  # as the fixture left it (earlier tests re-tile)
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=night)
    labels = layout.raw_survey("pit_a") / "landslides.gpkg"
    polygons = gpd.read_file(labels)
    polygons.iloc[:-1].to_file(labels, driver="GPKG")  # a landslide was drawn by mistake: removed
    run_job(defs, instance, ["raw_survey"], "pit_a")
    edit = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor,
                                             evaluation_time=night + dt.timedelta(minutes=1))
    # Re-tiled (same tiles), relabelled and re-compared; not re-segmented; nothing of pit_b; training waits.
    assert requested(edit) == {"survey_tiles": {"pit_a"}, "manual_labels": {"pit_a"}, "label_agreement": {"pit_a"}}
    assert edit.get_num_requested(dg.AssetKey("training_set")) == 0
    run_job(defs, instance, ["survey_tiles", "manual_labels", "label_agreement"], "pit_a", config)
    window = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=edit.cursor,
                                               evaluation_time=night + dt.timedelta(hours=1, minutes=1))
    assert window.get_num_requested(dg.AssetKey("training_set")) == 1 and requested(window) == {}
    assert window.get_num_requested(dg.AssetKey("evaluation_table")) == 0  # it follows retrained models


def _data_root(defs) -> str:
    return defs.resources["data_store"].root
