"""The whole chain, in process, on a tiny generated open-pit survey and an ephemeral instance."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from dagster import AssetKey, DagsterInstance

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.runner import run_chain
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.schemas import EvaluationTable
from landslide_pipeline.settings import PipelineSettings, StorageSettings
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.evaluate import cross_validation_f1, read_evaluation_table

SURVEY = "tiny_pit"
#: A second survey of another pit, without a DEM or labels, to map only (survey.toml role = "map").
RGB_SURVEY = "tiny_pit_rgb"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    layout = DataLayout(root / "data")
    generate_survey(layout.raw_survey(SURVEY), SyntheticSurveySpec(size_px=512, n_landslides=6, seed=11))
    generate_survey(layout.raw_survey(RGB_SURVEY), SyntheticSurveySpec(size_px=512, n_landslides=6, seed=12,
                                                                       with_dem=False, with_labels=False, role="map"))
    # Three architectures x two input sets are partitions, three are trained: evaluation takes what has been
    # trained. Each label source trains its own subset.
    settings = PipelineSettings(architectures=("unet", "linknet", "fcn"), n_folds=2)
    tracking_uri = f"sqlite:///{root}/mlruns/mlflow.db"
    defs = build_definitions(settings, StorageSettings(str(layout.root), tracking_uri, str(root / "mlruns" / "artifacts")))
    instance = DagsterInstance.ephemeral()
    results = run_chain(defs, settings, instance, [SURVEY, RGB_SURVEY],
                        {"survey_tiles": {"tile_size": 64},
                         "trained_model": {"epochs": 6, "batch_size": 16, "width": 0.125, "warmup_epochs": 1, "draws": 4},
                         "band_comparison": {"epochs": 2, "batch_size": 16, "loss": "weighted_ce",
                                             "architectures": ["unet"]},
                         "training_size_study": {"epochs": 2, "batch_size": 16, "sizes": [5, 20]}},
                        experiments=True, train={"unet": {}, "linknet": {"epochs": 4}, "unet@rgb": {}},
                        label_sources=("manual", "obia", "union"),
                        source_plans={"obia": {"unet": {}}, "union": {"unet": {"epochs": 4}}})
    return dict(layout=layout, results=results, instance=instance, tracking_uri=tracking_uri, settings=settings)


def test_every_asset_is_materialized(chain):
    instance = chain["instance"]
    for key in ["raw_survey", "survey_tiles", "manual_labels", "obia_labels", "label_agreement", "training_set",
                "trained_model", "fold_ensembles", "evaluation_table", "champion_model", "obia_training_set", "obia_trained_model",
                "union_training_set", "union_trained_model",
                "label_source_comparison", "architecture_comparison", "landslide_map", "landslide_changes", "band_comparison", "training_size_study"]:
        assert instance.get_latest_materialization_event(AssetKey(key)) is not None, key
    assert all(r.success for r in chain["results"])


def test_evaluation_table_is_valid_and_its_blocking_check_passed(chain):
    table = read_evaluation_table(chain["layout"])
    EvaluationTable.validate(table, lazy=True)
    assert set(table["reference"]) == {"manual"}  # every source's models scored against the manual masks
    models = set(zip(table["label_source"], table["architecture"]))
    assert models == {("manual", "unet"), ("manual", "linknet"), ("manual", "unet@rgb"), ("obia", "unet"),
                      ("union", "unet")}
    assert set(table.loc[table["architecture"] == "unet@rgb", "inputs"]) == {"rgb"}
    assert set(table.loc[table["architecture"] == "unet", "inputs"]) == {"rgb-slope"}
    for source, architecture in models:
        rows = table[(table["architecture"] == architecture) & (table["label_source"] == source)]
        assert sorted(zip(rows["kind"], rows["split"], rows["fold"])) == [
            ("ensemble", "test", -1), ("fold", "test", 0), ("fold", "test", 1), ("fold", "validation", 0),
            ("fold", "validation", 1)]
    ensemble = table[table["kind"] == "ensemble"].iloc[0]
    assert ensemble["members"] == 2 and 0 < ensemble["threshold"] < 1
    evaluation_run = next(r for r in chain["results"] if r.dagster_run.job_name == "evaluate_models")
    checks = evaluation_run.get_asset_check_evaluations()
    assert sorted(c.check_name for c in checks) == ["architecture_comparison_schema", "evaluation_table_schema"]
    assert all(c.passed for c in checks)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_trained_model_beats_trivial_predictors(chain, split):
    table = read_evaluation_table(chain["layout"])
    table = table[(table["split"] == split) & (table["kind"] == "fold")]
    counts = table[["tp", "fp", "fn", "tn"]].sum()
    prevalence = (counts.tp + counts.fn) / counts.sum()
    all_landslide_f1 = 2 * prevalence / (1 + prevalence)
    f1 = 2 * counts.tp / (2 * counts.tp + counts.fp + counts.fn)
    # An all-background predictor scores F1 = 0; predicting landslide everywhere scores 2p / (1 + p).
    assert f1 > max(0.0, all_landslide_f1) + 0.1, (f1, all_landslide_f1)
    assert (table["f1"] > 0).all()


def test_training_set_stores_every_tile_once_in_disjoint_folds(chain):
    samples = TrainingSet.load(chain["layout"].training_set("manual"))
    # Every band the DEM gives is stored; each model takes its input set's bands from them.
    assert samples.bands == ["red", "green", "blue", "elevation", "slope"] and samples.image_scaling == "uint8"
    assert len(samples.images) == len(samples.masks) == len(samples.tiles)  # no stored augmented copies
    test_tiles = set(samples.test_indices())
    assert 0 < len(test_tiles) < len(samples.tiles) / 3
    for fold in (0, 1):
        train_idx, val_idx = samples.split(fold)
        assert not set(train_idx) & set(val_idx)
        assert not set(train_idx) & test_tiles and not set(val_idx) & test_tiles


def test_mlflow_holds_a_child_run_per_fold_with_dagster_tags_and_a_model(chain):
    mlflow.set_tracking_uri(chain["tracking_uri"])
    runs = mlflow.search_runs(experiment_names=["landslide-pipeline"], output_format="pandas")
    children = runs[runs["tags.mlflow.parentRunId"].notna() & (runs["tags.label_source"] == "manual")
                    & (runs["tags.dagster.asset_key"] == "trained_model") & (runs["tags.architecture"] == "unet")
                    & (runs["tags.inputs"] == "rgb-slope")]
    assert sorted(children["params.fold"].astype(int)) == [0, 1]
    assert children["tags.dagster.run_id"].notna().all()
    assert set(children["tags.dagster.asset_key"]) == {"trained_model"}
    assert set(children["tags.dagster.partition"]) == {"unet|0", "unet|1"}
    assert children["tags.mlflow.parentRunId"].nunique() == 1
    obia_children = runs[runs["tags.mlflow.parentRunId"].notna() & (runs["tags.label_source"] == "obia")
                         & (runs["tags.architecture"] == "unet") & runs["tags.landslide.kind"].isna()]
    assert set(obia_children["tags.dagster.asset_key"]) == {"obia_trained_model"}
    assert obia_children["tags.mlflow.parentRunId"].nunique() == 1
    assert set(obia_children["tags.mlflow.parentRunId"]).isdisjoint(children["tags.mlflow.parentRunId"])
    parent = runs[runs["run_id"] == children["tags.mlflow.parentRunId"].iloc[0]].iloc[0]
    assert parent["tags.architecture"] == "unet" and parent["tags.dagster.partition"] is None
    history = mlflow.MlflowClient().get_metric_history(children["run_id"].iloc[0], "val_f1")
    assert [m.step for m in history] == list(range(1, 7))
    table = read_evaluation_table(chain["layout"])
    table = table[(table["architecture"] == "unet") & (table["label_source"] == "manual")]
    assert set(table.loc[table["kind"] == "fold", "mlflow_run_id"]) == set(children["run_id"])
    ensemble = runs[runs["run_id"] == table.loc[table["kind"] == "ensemble", "mlflow_run_id"].iloc[0]].iloc[0]
    assert ensemble["tags.mlflow.parentRunId"] == parent["run_id"]  # beside its folds in the cross-validation


def test_the_fold_ensemble_is_the_champion_and_reloads_for_any_window_size(chain):
    mlflow.set_tracking_uri(chain["tracking_uri"])
    table = read_evaluation_table(chain["layout"])
    version = mlflow.MlflowClient().get_model_version_by_alias("landslide-segmenter", "champion")
    table = table[(table["architecture"] == version.tags["architecture"])
                  & (table["label_source"] == version.tags["label_source"])]
    assert version.run_id == table.loc[table["kind"] == "ensemble", "mlflow_run_id"].iloc[0]
    assert version.tags["kind"] == "ensemble" and "landslide where probability >" in version.description
    bands = version.tags["bands"].split(",")
    model = mlflow.pytorch.load_model("models:/landslide-segmenter@champion")
    x = torch.rand(3, len(bands), 96, 160)
    x[0, :, :8, :8] = float("nan")  # no data: the model's normalisation fills it in
    probability = model(x)
    assert tuple(probability.shape) == (3, 2, 96, 160) and torch.isfinite(probability).all()
    torch.testing.assert_close(probability.sum(dim=1), torch.ones(3, 96, 160))
    info = mlflow.models.get_model_info("models:/landslide-segmenter@champion")
    assert info.metadata["bands"] == bands and info.metadata["image_scaling"] == "uint8"
    assert bands in (["red", "green", "blue"], ["red", "green", "blue", "slope"])
    assert len(info.metadata["members"]) == 2 and 0 < info.metadata["threshold"] < 1
    weights = mlflow.artifacts.download_artifacts(f"runs:/{version.run_id}/weights")
    assert sorted(p.name for p in Path(weights).iterdir()) == ["model.json", "weights.pt"]


def test_object_oriented_training_set_shares_tiles_and_folds_and_scores_against_manual_masks(chain):
    manual = TrainingSet.load(chain["layout"].training_set("manual"))
    obia = TrainingSet.load(chain["layout"].training_set("obia"))
    assert (obia.label_source, obia.reference_source) == ("obia", "manual")
    folds = manual.tiles.set_index("tile_id")["fold"]
    assert (obia.tiles["fold"].to_numpy() == folds.loc[obia.tiles["tile_id"]].to_numpy()).all()
    assert set(obia.tiles["tile_id"]) == set(manual.tiles["tile_id"])
    position = {tile: i for i, tile in enumerate(manual.tiles["tile_id"])}
    for i, tile in enumerate(obia.tiles["tile_id"]):
        assert (obia.reference[i] == manual.masks[position[tile]]).all()  # the manual masks, tile for tile
    everything = np.arange(len(obia.tiles))
    assert (obia.masks[everything] != obia.reference[everything]).any()  # and not the training labels


def test_label_source_comparison_scores_every_source_on_the_same_tiles(chain):
    table = pd.read_parquet(chain["layout"].comparison / "label_sources.parquet")
    EvaluationTable.validate(table, lazy=True)
    # The variants trained on two or more sources: unet on all three; linknet and unet@rgb on one only.
    assert set(zip(table["label_source"], table["architecture"])) == {("manual", "unet"), ("obia", "unet"),
                                                                      ("union", "unet")}
    assert set(table["reference"]) == {"manual"}
    tiles = table.groupby(["split", "fold"])["n_tiles"].nunique()
    assert (tiles == 1).all()  # every source's models scored on the same tiles
    positives = table.assign(positives=table["tp"] + table["fn"]).groupby(["split", "fold"])["positives"].nunique()
    assert (positives == 1).all()  # against the same reference masks
    comparison_run = next(r for r in chain["results"] if r.dagster_run.job_name == "compare_label_sources")
    assert [c.passed for c in comparison_run.get_asset_check_evaluations()] == [True]
    summary = pd.read_csv(chain["layout"].comparison / "summary.csv")
    test = summary[summary["split"] == "test"].set_index(["architecture", "label_source"])
    assert set(test.index) == set(zip(table["architecture"], table["label_source"]))
    for source in ("obia", "union"):
        row, manual = test.loc[("unet", source)], test.loc[("unet", "manual")]
        assert row["f1_change"] == pytest.approx((row["f1"] - manual["f1"]) / manual["f1"])
        # Object-oriented labels of the synthetic pit are good (F1 ~0.9 against the truth): models trained
        # on them, or on their union with the manual ones, must also find landslides.
        assert row["f1"] > 0.3, (source, row["f1"])
    assert test.loc[("unet", "manual"), "f1_change"] == 0


def test_the_registry_names_the_best_model_per_input_set_and_label_source(chain):
    client = mlflow.MlflowClient(chain["tracking_uri"])
    table = read_evaluation_table(chain["layout"])
    for alias, column, value in [("champion-rgb", "inputs", "rgb"), ("champion-rgb-slope", "inputs", "rgb-slope"),
                                 ("champion-manual", "label_source", "manual"), ("champion-obia", "label_source", "obia"),
                                 ("champion-union", "label_source", "union")]:
        version = client.get_model_version_by_alias("landslide-segmenter", alias)
        assert version.tags[column] == value, alias
        estimate = cross_validation_f1(table[table[column] == value])  # per (label source, variant)
        assert (version.tags["label_source"], version.tags["architecture"]) == estimate.idxmax(), alias
        assert float(version.tags["cv_f1"]) == pytest.approx(estimate.max(), abs=1e-4)
        assert version.tags["kind"] == "ensemble", alias
    rgb = client.get_model_version_by_alias("landslide-segmenter", "champion-rgb")
    assert rgb.tags["bands"] == "red,green,blue" and rgb.tags["architecture"] == "unet@rgb"


def test_a_survey_without_a_dem_is_mapped_by_default_with_the_image_only_model(chain):
    import json

    import rasterio

    layout = chain["layout"]
    client = mlflow.MlflowClient(chain["tracking_uri"])
    champion = client.get_model_version_by_alias("landslide-segmenter", "champion")
    facts = json.loads((layout.map(RGB_SURVEY) / "map.json").read_text())
    expected = "champion" if champion.tags["inputs"] == "rgb" else "champion-rgb"
    assert (facts["requested_alias"], facts["alias"], facts["inputs"]) == ("champion", expected, "rgb")
    assert facts["version"] == client.get_model_version_by_alias("landslide-segmenter", expected).version
    with rasterio.open(layout.map(RGB_SURVEY) / "mask.tif") as mask, \
            rasterio.open(layout.raw_survey(RGB_SURVEY) / "ground_truth.tif") as truth:
        predicted, reference = mask.read(1) == 1, truth.read(1) > 0
    f1 = 2 * (predicted & reference).sum() / (predicted.sum() + reference.sum())
    assert f1 > 0.3, f1  # another pit, never trained on, mapped from the image alone
    # role = "map": its object-oriented labels never entered a training set.
    for source in ("obia", "union"):
        assert RGB_SURVEY not in set(TrainingSet.load(layout.training_set(source)).tiles["survey_id"])


@pytest.mark.parametrize("folder, plots", [
    ("reports/architectures", ["architectures_validation.png", "architectures_test.png", "panel.png"]),
    ("comparison", ["label_source_validation.png", "label_source_test.png", "panel.png"]),
])
def test_experiment_reports_link_their_plots_and_runs_and_are_logged_to_mlflow(chain, folder, plots):
    directory = chain["layout"].root / folder
    report = (directory / "report.md").read_text()
    for name in plots:
        assert (directory / name).stat().st_size > 5_000 and f"({name})" in report
    assert "/#/experiments/" in report and "/runs/" in report
    mlflow.set_tracking_uri(chain["tracking_uri"])
    runs = mlflow.search_runs(experiment_names=["landslide-pipeline"], output_format="pandas")
    kind = "architectures" if "architectures" in folder else "label_sources"
    run_id = runs.loc[runs["tags.landslide.report"] == kind, "run_id"].iloc[0]
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "report")}
    assert f"report/{plots[0]}" in logged and "report/report.md" in logged


def test_the_survey_is_mapped_by_the_champion_and_the_map_finds_its_landslides(chain):
    import json

    import geopandas as gpd
    import rasterio

    layout = chain["layout"]
    folder = layout.map(SURVEY)
    facts = json.loads((folder / "map.json").read_text())
    mlflow.set_tracking_uri(chain["tracking_uri"])
    champion = mlflow.MlflowClient().get_model_version_by_alias("landslide-segmenter", "champion")
    assert (facts["version"], facts["mlflow_run_id"]) == (champion.version, champion.run_id)
    assert facts["mask"] == str(folder / "mask.tif") and facts["probability"] == str(folder / "probability.tif")
    with rasterio.open(folder / "mask.tif") as mask, rasterio.open(layout.raw_survey(SURVEY) / "ground_truth.tif") as truth:
        assert (mask.crs, mask.transform, mask.shape) == (truth.crs, truth.transform, truth.shape)
        predicted, reference = mask.read(1) == 1, truth.read(1) > 0
    f1 = 2 * (predicted & reference).sum() / (predicted.sum() + reference.sum())
    assert f1 > 0.5, f1
    polygons = gpd.read_file(folder / "landslides.gpkg", layer="landslides")
    assert len(polygons) >= 1 and polygons.crs == truth.crs
    assert polygons["area_m2"].sum() == pytest.approx(predicted.sum() * abs(truth.res[0] * truth.res[1]), rel=0.2)
    summary = json.loads((layout.changes(SURVEY) / "summary.json").read_text())
    assert summary["previous"] is None and not summary["alert"]  # the survey has no site
    # The asset's metadata: the quicklook inline, the report and the champion's MLflow run page.
    from dagster import AssetRecordsFilter

    records = chain["instance"].fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("landslide_map"), asset_partitions=[SURVEY]), limit=1).records
    metadata = records[0].asset_materialization.metadata
    assert metadata["quicklook"].value.startswith(f"![{SURVEY} quicklook](data:image/png;base64,")
    assert metadata["mlflow_run"].value.endswith(f"/runs/{champion.run_id}")
    assert "landslides**" in (folder / "report.md").read_text()


def test_band_and_training_size_experiments_write_valid_tables_and_reports(chain):
    from landslide_pipeline.schemas import ExperimentTable

    reports = chain["layout"].reports
    bands = pd.read_parquet(reports / "band_comparison" / "table.parquet")
    ExperimentTable.validate(bands, lazy=True)
    assert set(bands["variant"]) == {"rgb", "rgb-dem", "rgb-slope"}  # study A, Table 7
    assert set(bands["bands"]) == {"red+green+blue", "red+green+blue+elevation", "red+green+blue+slope"}
    sizes = pd.read_parquet(reports / "training_size_study" / "table.parquet")
    ExperimentTable.validate(sizes, lazy=True)
    tiles = sizes.groupby("variant")["train_tiles"].max()
    assert tiles["5 tiles"] == 5 and 5 < tiles["20 tiles"] <= 20
    for folder, plot in (("band_comparison", "bands_test.png"), ("training_size_study", "training_size_test.png"),
                         ("training_size_study", "improvement_test.png")):
        assert f"({plot})" in (reports / folder / "report.md").read_text()
    assert set(bands["architecture"]) == {"unet"} and set(sizes["architecture"]) == {"unet", "linknet"}
    improvement = pd.read_csv(reports / "training_size_study" / "improvement.csv")  # study B, Fig. 9
    assert set(improvement["candidate"]) == {"linknet"} and sorted(set(improvement["train_tiles"])) == [5, 20]
    experiments_run = chain["results"][-1]
    assert experiments_run.dagster_run.job_name == "run_experiments"
    assert sorted(c.check_name for c in experiments_run.get_asset_check_evaluations() if c.passed) == [
        "band_comparison_schema", "training_size_study_schema"]


def test_landslide_evaluate_scores_the_registered_champion_on_the_survey(chain, capsys):
    import json

    from landslide_pipeline.cli import EVALUATE_KEYS, main

    code = main(["evaluate", "models:/landslide-segmenter@champion", "--survey", SURVEY, "--data",
                 str(chain["layout"].root), "--tracking-uri", chain["tracking_uri"], "--quiet"])
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and tuple(result) == EVALUATE_KEYS
    table = read_evaluation_table(chain["layout"])
    champion = mlflow.MlflowClient(chain["tracking_uri"]).get_model_version_by_alias("landslide-segmenter", "champion")
    ensemble = table[table["mlflow_run_id"] == champion.run_id].iloc[0]
    assert result["threshold"] == pytest.approx(ensemble["threshold"])
    samples = TrainingSet.load(chain["layout"].training_set("manual"))
    assert result["n_tiles"] == len(samples.tiles)  # every labelled tile of the survey
    assert result["f1"] > 0.5 and "ensemble" in out


def test_a_lost_tracking_store_stops_runs_until_the_models_are_re_registered(chain, tmp_path, capsys):
    import shutil

    from landslide_pipeline.cli import main
    from landslide_pipeline.model_store import check_tracking_store

    project = tmp_path / "project"
    shutil.copytree(chain["layout"].root.parent, project)
    (project / "mlruns" / "mlflow.db").unlink()  # the store is lost; the models on disk remain
    for folder in ("models/obia", "models/union", "models/manual/linknet", "models/manual/unet@rgb"):
        shutil.rmtree(project / "data" / folder)  # one model is enough here, and re-scoring six takes minutes
    tracking_uri = f"sqlite:///{project}/mlruns/mlflow.db"
    storage = StorageSettings(str(project / "data"), tracking_uri, str(project / "mlruns" / "artifacts"))
    defs = build_definitions(chain["settings"], storage)
    job = defs.resolve_implicit_global_asset_job_def()
    selection = [AssetKey("evaluation_table"), AssetKey("champion_model")]  # what names the runs
    lost = job.execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False, asset_selection=selection)
    assert not lost.success
    failure = next(e for e in lost.all_events if e.is_failure)
    assert "tracking store reset or lost" in str(failure.event_specific_data.error)
    assert main(["reregister", "--data", str(project / "data"), "--tracking-uri", tracking_uri]) == 0
    assert "re-registered" in capsys.readouterr().out
    assert check_tracking_store(DataLayout(project / "data").models, tracking_uri) > 0
    recovered = job.execute_in_process(instance=DagsterInstance.ephemeral(), asset_selection=selection)
    assert recovered.success
    client = mlflow.MlflowClient(tracking_uri)
    assert client.get_model_version_by_alias("landslide-segmenter", "champion").run_id


def test_the_trained_architectures_are_evaluated_and_compared_and_the_untrained_one_left_out(chain):
    table = read_evaluation_table(chain["layout"])
    manual = {"unet", "linknet", "unet@rgb"}  # fcn and the other @rgb variants are partitions nobody trained
    assert set(table.loc[table["label_source"] == "manual", "architecture"]) == manual
    assert set(table.loc[(table["kind"] == "ensemble") & (table["label_source"] == "manual"), "architecture"]) == manual
    report = chain["layout"].report("architectures")
    summary = pd.read_csv(report / "summary.csv")
    assert set(summary["architecture"]) == manual
    sizes = pd.read_csv(report / "by_landslide_size.csv")  # study B Figs. 10-12
    backgrounds = pd.read_csv(report / "by_background.csv")
    assert set(sizes["model"]) == set(backgrounds["model"]) == manual
    assert sizes["landslides"].sum() > 0 and set(backgrounds["background"]) <= {"simple", "moderate", "complex"}
    examples = sorted(p.name for p in report.glob("examples_*.png"))
    assert "examples_simple_background.png" in examples and "examples_complex_background.png" in examples
    assert any(name.endswith("_landslides.png") for name in examples)
    assert all(f"({name})" in (report / "report.md").read_text() for name in examples)
    evaluation_run = next(r for r in chain["results"] if r.dagster_run.job_name == "evaluate_models")
    assert all(c.passed for c in evaluation_run.get_asset_check_evaluations())


def test_the_registry_holds_a_challenger_and_runs_hold_test_and_cross_validation_scores(chain):
    client = mlflow.MlflowClient(chain["tracking_uri"])
    champion = client.get_model_version_by_alias("landslide-segmenter", "champion")
    challenger = client.get_model_version_by_alias("landslide-segmenter", "challenger")
    assert (champion.tags["label_source"], champion.tags["architecture"]) != (
        challenger.tags["label_source"], challenger.tags["architecture"])
    assert float(champion.tags["cv_f1"]) >= float(challenger.tags["cv_f1"])
    table = read_evaluation_table(chain["layout"])
    fold = table[(table["kind"] == "fold") & (table["split"] == "test")].iloc[0]
    run = client.get_run(fold["mlflow_run_id"])
    assert run.data.metrics["test_f1"] == pytest.approx(fold["f1"])
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    folds = table[(table["kind"] == "fold") & (table["split"] == "validation")
                  & (table["architecture"] == fold["architecture"]) & (table["label_source"] == fold["label_source"])]
    assert parent.data.metrics["validation_f1_mean"] == pytest.approx(folds["f1"].mean())
    assert {"cv_f1", "test_f1_std", "validation_kappa_mean"} <= set(parent.data.metrics)
