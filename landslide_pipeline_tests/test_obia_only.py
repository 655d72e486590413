"""A mine without hand-drawn polygons: object-oriented labels alone give a registered model that maps."""

import json

import mlflow
import pytest
from dagster import AssetKey, DagsterInstance

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.runner import run_chain
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.mapping.landslide_map import map_scores
from landslide_pipeline.settings import PipelineSettings, StorageSettings
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey
from landslide_pipeline.training.evaluate import read_evaluation_table

SURVEY = "unlabelled_pit"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("obia_only")
    layout = DataLayout(root / "data")
    generate_survey(layout.raw_survey(SURVEY), SyntheticSurveySpec(size_px=512, n_landslides=6, seed=11,
                                                                   with_labels=False))
    settings = PipelineSettings(architectures=("unet",), n_folds=2)
    tracking_uri = f"sqlite:///{root}/mlruns/mlflow.db"
    defs = build_definitions(settings, StorageSettings(str(layout.root), tracking_uri, str(root / "mlruns" / "artifacts")))
    instance = DagsterInstance.ephemeral()
    results = run_chain(defs, settings, instance, [SURVEY],
                        {"survey_tiles": {"tile_size": 64},
                         "trained_model": {"epochs": 8, "batch_size": 16, "width": 0.125, "warmup_epochs": 1,
                                           "draws": 4}},
                        train={"unet": {}}, label_sources=("obia",))
    return dict(layout=layout, results=results, instance=instance, tracking_uri=tracking_uri)


def test_no_manual_labels_is_not_a_failure(project):
    assert all(r.success for r in project["results"])
    event = project["instance"].get_latest_materialization_event(AssetKey("training_set"))
    assert event.asset_materialization.metadata["n_tiles"].value == 0
    assert not project["layout"].training_set("manual").exists()


def test_object_oriented_models_are_scored_on_their_held_out_labels_and_registered(project):
    table = read_evaluation_table(project["layout"])
    assert set(table["label_source"]) == {"obia"} and set(table["reference"]) == {"obia"}
    client = mlflow.MlflowClient(project["tracking_uri"])
    champion = client.get_model_version_by_alias("landslide-segmenter", "champion")
    assert champion.tags["label_source"] == "obia" and champion.tags["inputs"] == "rgb-slope"
    assert client.get_model_version_by_alias("landslide-segmenter", "champion-obia").version == champion.version


def test_the_object_oriented_champion_maps_the_survey(project):
    layout = project["layout"]
    facts = json.loads((layout.map(SURVEY) / "map.json").read_text())
    assert (facts["alias"], facts["label_source"]) == ("champion", "obia")
    scores = map_scores(layout.map(SURVEY), layout.raw_survey(SURVEY) / "ground_truth.tif")
    # Object-oriented labels of the synthetic pit reach F1 ~0.9 against the truth: a model trained on
    # them alone must find the landslides.
    assert scores["f1"] > 0.4, scores
