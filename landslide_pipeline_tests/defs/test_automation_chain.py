"""The whole chain driven by automation ticks alone, as the daemon would: a label edit in one
survey reaches a new champion and new maps, and touches nothing else of the other survey."""

import datetime as dt
from collections import defaultdict

import dagster as dg
import geopandas as gpd
import pytest

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.runner import run_assets, run_chain
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.settings import PipelineSettings, StorageSettings
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey

NIGHT = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)  # an hour before the default retraining window
TRAINING = {"survey_tiles": {"tile_size": 64},
            "trained_model": {"epochs": 2, "batch_size": 16, "width": 0.125, "warmup_epochs": 1, "draws": 1}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("automated_chain")
    layout = DataLayout(root / "data")
    for seed, survey_id in enumerate(("pit_a", "pit_b")):
        generate_survey(layout.raw_survey(survey_id), SyntheticSurveySpec(size_px=256, n_landslides=3, seed=seed + 20))
    settings = PipelineSettings(architectures=("unet", "linknet"), n_folds=2, input_sets=("rgb-slope",))
    defs = build_definitions(settings, StorageSettings(str(layout.root), f"sqlite:///{root}/mlflow.db",
                                                       str(root / "artifacts")))
    instance = dg.DagsterInstance.ephemeral()
    run_chain(defs, settings, instance, ["pit_a", "pit_b"], TRAINING, train={"unet": {}})
    return layout, defs, instance


def execute(defs, instance, result) -> dict[str, set]:
    """Runs what a tick requested, one run per partition (as the daemon launches them); returns
    asset -> requested partitions."""
    by_partition, requested = defaultdict(list), defaultdict(set)
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        for partition in result.get_requested_partitions(key):
            by_partition[partition].append(key)
            requested[key.to_user_string()].add(partition)
    for partition, keys in by_partition.items():
        assert run_assets(defs, instance, [k.to_user_string() for k in keys], TRAINING, partition).success
    return dict(requested)


def test_a_label_edit_reaches_a_new_champion_and_new_maps_and_nothing_else_of_the_other_survey(project):
    layout, defs, instance = project
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=NIGHT)
    assert tick.total_requested == 0  # the chain is up to date
    labels = layout.raw_survey("pit_a") / "landslides.gpkg"
    gpd.read_file(labels).iloc[:-1].to_file(labels, driver="GPKG")
    assert run_assets(defs, instance, ["raw_survey"], {}, "pit_a").success
    seen: dict[str, set] = defaultdict(set)
    for minute in (1, 61, 62, 63, 64, 65, 66):  # before the 02:00 window, then tick by tick after it
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor,
                                                 evaluation_time=NIGHT + dt.timedelta(minutes=minute))
        for asset, partitions in execute(defs, instance, tick).items():
            seen[asset] |= partitions
    assert seen["survey_tiles"] == seen["manual_labels"] == seen["label_agreement"] == {"pit_a"}
    assert "obia_labels" not in seen  # a label edit does not re-segment the scene
    assert seen["training_set"] == {None}
    # Only the partitions that had been trained are retrained: unet's two folds, not linknet's.
    assert {str(p) for p in seen["trained_model"]} == {"unet|0", "unet|1"}
    assert seen["evaluation_table"] == seen["champion_model"] == {None}
    assert seen["landslide_map"] == {"pit_a", "pit_b"}  # a new champion re-maps every survey
    assert "obia_trained_model" not in seen and "band_comparison" not in seen
