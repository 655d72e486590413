import dagster as dg
import pytest

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.settings import PipelineSettings


def test_project_definitions_load_with_every_asset_and_lineage():
    from landslide_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_survey", "survey_tiles", "manual_labels", "training_set", "trained_model",
                    "fold_ensembles", "evaluation_table", "champion_model", "obia_labels", "label_agreement", "obia_training_set",
                    "obia_trained_model", "union_training_set", "union_trained_model", "label_source_comparison",
                    "architecture_comparison", "site_history",
                    "landslide_map", "landslide_changes", "band_comparison", "training_size_study"}
    parents = {k: {p.to_user_string() for p in graph.get(dg.AssetKey(k)).parent_keys} for k in keys}
    assert parents["survey_tiles"] == {"raw_survey"}
    assert parents["manual_labels"] == {"raw_survey", "survey_tiles"}  # it reads the survey's label file
    assert parents["training_set"] == {"manual_labels"}
    assert parents["trained_model"] == {"training_set"}
    models = {"trained_model", "obia_trained_model", "union_trained_model"}
    assert parents["fold_ensembles"] == models
    # Every label source's models are scored in one table, on the manual set when there is one.
    assert parents["evaluation_table"] == models | {"fold_ensembles", "training_set", "obia_training_set",
                                                    "union_training_set"}
    assert parents["champion_model"] == {"evaluation_table"}
    assert parents["obia_labels"] == {"raw_survey", "survey_tiles", "manual_labels"}
    assert parents["label_agreement"] == {"obia_labels", "manual_labels"}
    # The object-oriented and union chains share the manual set's folds.
    assert parents["obia_training_set"] == {"obia_labels", "training_set"}
    assert parents["obia_trained_model"] == {"obia_training_set"}
    assert parents["union_training_set"] == {"manual_labels", "obia_labels", "training_set"}
    assert parents["union_trained_model"] == {"union_training_set"}
    assert parents["architecture_comparison"] == {"evaluation_table"}
    assert parents["landslide_map"] == {"raw_survey", "champion_model"}
    assert parents["landslide_changes"] == {"landslide_map"}  # every map: the previous survey's is one of them
    assert parents["site_history"] == {"landslide_changes"}
    assert parents["band_comparison"] == parents["training_size_study"] == {"training_set"}
    assert defs.resolve_schedule_def("nightly_mapping").default_status == dg.DefaultScheduleStatus.RUNNING
    assert parents["label_source_comparison"] == {"evaluation_table"}
    for asset, name in [("evaluation_table", "evaluation_table_schema"),
                        ("label_source_comparison", "label_source_comparison_schema"),
                        ("architecture_comparison", "architecture_comparison_schema"),
                        ("band_comparison", "band_comparison_schema"),
                        ("training_size_study", "training_size_study_schema")]:
        assert graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(asset), name)).blocking


def test_partitions_follow_the_settings():
    defs = build_definitions(PipelineSettings(architectures=("unet", "resunet"), n_folds=3))
    graph = defs.resolve_asset_graph()
    models = graph.get(dg.AssetKey("trained_model")).partitions_def
    assert isinstance(models, dg.MultiPartitionsDefinition)
    # Every architecture with every input set: the default (image + slope) by its name, the others @<set>.
    assert sorted(models.get_partition_keys()) == sorted(
        f"{variant}|{fold}" for variant in ("unet", "unet@rgb", "resunet", "resunet@rgb") for fold in "012")
    survey = graph.get(dg.AssetKey("survey_tiles")).partitions_def
    assert isinstance(survey, dg.DynamicPartitionsDefinition) and survey.name == "survey"
    assert graph.get(dg.AssetKey("training_set")).partitions_def is None


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("LANDSLIDE_FOLDS", "3")
    monkeypatch.setenv("LANDSLIDE_ARCHITECTURES", "unet, linknet")
    assert PipelineSettings.from_env() == PipelineSettings(("unet", "linknet"), 3)
    monkeypatch.setenv("LANDSLIDE_INPUT_SETS", "rgb, rgb-terrain")
    assert PipelineSettings.from_env().model_variants == ["unet@rgb", "unet@rgb-terrain", "linknet@rgb",
                                                          "linknet@rgb-terrain"]
    monkeypatch.setenv("LANDSLIDE_INPUT_SETS", "rgb-lidar")
    with pytest.raises(ValueError, match="unknown input set 'rgb-lidar'"):
        PipelineSettings.from_env()
    monkeypatch.setenv("LANDSLIDE_ARCHITECTURES", "segformer")
    with pytest.raises(ValueError, match="unknown architectures"):
        PipelineSettings.from_env()
    monkeypatch.setenv("LANDSLIDE_FOLDS", "one")
    with pytest.raises(ValueError, match="LANDSLIDE_FOLDS"):
        PipelineSettings.from_env()
