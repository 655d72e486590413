"""The MLflow resource: runs of killed training continue or are closed, a lost store stops runs."""

import json

import mlflow
import pytest

from landslide_pipeline.defs.resources import MlflowTracking
from landslide_pipeline.model_store import TrackingStoreLostError, check_tracking_store

TAGS = {"architecture": "unet", "fold": "0", "label_source": "manual", "landslide.checkpoint": "set-abc"}


@pytest.fixture
def tracking(tmp_path):
    return MlflowTracking(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=str(tmp_path / "artifacts"),
                          data_root=str(tmp_path / "data"))


def killed_run(tracking, fold="0"):
    """A fold run whose process died: MLflow still says RUNNING."""
    parent = tracking.parent_run_id("group", "cv", TAGS)
    client = mlflow.MlflowClient()
    run = client.create_run(tracking.experiment_id(), tags={**TAGS, "fold": fold, "mlflow.parentRunId": parent})
    client.log_metric(run.info.run_id, "val_f1", 0.4, step=1)
    return run.info.run_id


def test_a_resumed_fold_continues_the_run_of_its_killed_training(tracking):
    killed = killed_run(tracking)
    other_fold = killed_run(tracking, fold="1")
    with tracking.fold_run("group", "cv", "unet-fold0", TAGS, resuming=True) as run:
        mlflow.log_metric("val_f1", 0.5, step=2)
    assert run.info.run_id == killed
    client = mlflow.MlflowClient()
    assert [m.step for m in client.get_metric_history(killed, "val_f1")] == [1, 2]  # one history
    assert client.get_run(killed).info.status == "FINISHED"
    assert client.get_run(other_fold).info.status == "RUNNING"  # another fold's run is not touched


def test_a_fresh_start_marks_the_killed_run_killed(tracking):
    killed = killed_run(tracking)
    with tracking.fold_run("group", "cv", "unet-fold0", TAGS, resuming=False) as run:
        pass
    client = mlflow.MlflowClient()
    assert run.info.run_id != killed and client.get_run(killed).info.status == "KILLED"


def test_models_on_disk_whose_runs_the_store_lacks_stop_every_run(tracking, tmp_path):
    with mlflow.start_run(experiment_id=tracking.experiment_id()) as run:
        pass
    fold = tmp_path / "data" / "models" / "manual" / "unet" / "fold_0"
    fold.mkdir(parents=True)
    (fold / "model.json").write_text(json.dumps({"mlflow_run_id": run.info.run_id, "members": []}))
    assert check_tracking_store(tmp_path / "data" / "models", tracking.tracking_uri) == 1
    (fold / "model.json").write_text(json.dumps({"mlflow_run_id": "0" * 32, "members": []}))
    with pytest.raises(TrackingStoreLostError, match=r"tracking store reset or lost: 1 of the 1 .*fold_0.*reregister"):
        check_tracking_store(tmp_path / "data" / "models", tracking.tracking_uri)


def test_variant_keys_become_valid_mlflow_metric_names():
    from landslide_pipeline.defs.resources import metric_name

    assert metric_name("test_f1_linknet@rgb-dem") == "test_f1_linknet_rgb-dem"
    assert metric_name("cv f1: unet/fold.0") == "cv f1: unet/fold.0"


def test_artifact_uris_pass_through_and_local_folders_become_absolute(tmp_path, monkeypatch):
    for uri in ("s3://landslides/mlflow", "mlflow-artifacts:/experiments", "gs://bucket/x"):
        assert MlflowTracking(artifact_root=uri, data_root=str(tmp_path)).artifact_location() == uri
    monkeypatch.chdir(tmp_path)
    local = MlflowTracking(artifact_root="mlruns/artifacts", data_root=str(tmp_path)).artifact_location()
    assert local == (tmp_path / "mlruns" / "artifacts").as_uri()


def _parent_of(args: tuple[str, str]) -> str:
    tracking_uri, data_root = args
    tracking = MlflowTracking(tracking_uri=tracking_uri, artifact_root=f"{data_root}/artifacts", data_root=data_root)
    return tracking.parent_run_id("unet-cv", "unet 5-fold CV", TAGS)


def test_fold_runs_starting_together_share_one_experiment_and_one_parent_run(tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(tracking_uri)
    # An executor, not a Pool: a worker that dies fails the test (BrokenProcessPool) instead of hanging it.
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        parents = [f.result(timeout=180) for f in [pool.submit(_parent_of, (tracking_uri, str(tmp_path / "data")))
                                                   for _ in range(3)]]
    assert len(set(parents)) == 1
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="tags.`landslide.cv_group` = 'unet-cv'")
    assert len(runs) == 1 and len(mlflow.search_experiments()) == 1 + 1  # ours and MLflow's "Default"
