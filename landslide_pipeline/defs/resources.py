"""Resources: where the data lives, and the MLflow tracking store."""


import contextlib
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import torch
from dagster import ConfigurableResource
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from pydantic import Field

from landslide_pipeline.layout import DataLayout
from landslide_pipeline.model_store import DEFAULT_TRACKING_URI, resolve_model, resolve_tracking_uri
from landslide_pipeline.nn.segmenter import Segmenter
from landslide_pipeline.settings import StorageSettings
from landslide_pipeline.training.checkpoint import ModelSpec
from landslide_pipeline.training.loop import EpochReport

CHAMPION_ALIAS = "champion"
#: Tags that describe one fold's run, not the cross-validation as a whole.
PER_FOLD_TAGS = frozenset({"dagster.run_id", "dagster.partition", "fold"})


def model_metadata(spec: ModelSpec) -> dict:
    """What a user of the MLflow model must know: its input contract, output and decision rule."""
    return {
        "input": f"float32 (N, {spec.in_channels}, H, W), H and W multiples of 32: bands "
                 f"{', '.join(spec.bands)}; image bands scaled by their dtype's range ({spec.image_scaling} imagery), "
                 "NaN where there is no data (training.features.tile_features); the model normalises each band",
        "output": "float32 (N, 2, H, W) class probabilities (background, landslide)",
        "threshold": spec.threshold, "decision": f"landslide where probability > {spec.threshold}",
        "bands": list(spec.bands), "image_scaling": spec.image_scaling, "kind": spec.kind,
        "members": [{"architecture": m.architecture, "fold": m.fold, "width": m.width, "mean": list(m.mean),
                     "std": list(m.std)} for m in spec.members],
        "flips": spec.flips,
    }


class DataStore(ConfigurableResource):
    """The data folder; relative paths resolve against the working directory (the project root)."""

    root: str = Field(default=StorageSettings.data_dir, description="The data folder (raw surveys and every output).")

    @property
    def layout(self) -> DataLayout:
        return DataLayout(Path(self.root).resolve())


class MlflowTracking(ConfigurableResource):
    """MLflow on SQLite in ``mlruns/``; one parent run per cross-validation, a child run per fold.

    The plain ``./mlruns`` file store is deprecated in MLflow 3, hence SQLite for runs and the
    registry, with artifacts (models) as files under ``artifact_root``.
    """

    tracking_uri: str = Field(default=DEFAULT_TRACKING_URI, description="MLflow tracking store (runs and registry).")
    artifact_root: str = Field(default=StorageSettings.artifact_root, description="Where a new experiment keeps its model files.")
    experiment_name: str = Field(default="landslide-pipeline", description="The MLflow experiment of every run.")
    registered_model_name: str = Field(default="landslide-segmenter",
                                       description="The registered model the champion joins.")

    def resolved_tracking_uri(self) -> str:
        return resolve_tracking_uri(self.tracking_uri)

    def experiment_id(self) -> str:
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        experiment = mlflow.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        artifacts = Path(self.artifact_root).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        return mlflow.create_experiment(self.experiment_name, artifact_location=artifacts.as_uri())

    def parent_run_id(self, group: str, run_name: str, tags: dict[str, str]) -> str:
        """Finds or creates the parent run that gathers the folds of one cross-validation."""
        experiment_id = self.experiment_id()
        found = mlflow.search_runs([experiment_id], filter_string=f"tags.`landslide.cv_group` = '{group}'",
                                   max_results=1, output_format="list")
        if found:
            return found[0].info.run_id
        client = mlflow.MlflowClient()
        shared = {k: v for k, v in tags.items() if k not in PER_FOLD_TAGS}
        run = client.create_run(experiment_id, run_name=run_name, tags={**shared, "landslide.cv_group": group})
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    @contextlib.contextmanager
    def fold_run(self, group: str, parent_name: str, run_name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
        """A child run of the cross-validation's parent run; closed (FAILED on error) on exit."""
        parent = self.parent_run_id(group, parent_name, tags)
        with mlflow.start_run(experiment_id=self.experiment_id(), run_name=run_name, tags=tags,
                              parent_run_id=parent, nested=True) as run:
            yield run

    @contextlib.contextmanager
    def sibling_run(self, run_id: str, run_name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
        """A run under the same parent as ``run_id`` (e.g. a fold ensemble beside its fold runs)."""
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        parent = mlflow.MlflowClient().get_run(run_id).data.tags.get("mlflow.parentRunId")
        with mlflow.start_run(experiment_id=self.experiment_id(), run_name=run_name, tags=tags,
                              parent_run_id=parent, nested=parent is not None) as run:
            yield run

    @staticmethod
    def log_params(params: dict) -> None:
        mlflow.log_params(params)

    @staticmethod
    def log_summary(**metrics: float) -> None:
        mlflow.log_metrics(metrics)

    @staticmethod
    def log_epoch(report: EpochReport) -> None:
        mlflow.log_metrics({
            "train_loss": report.train_loss, "val_loss": report.val_loss, "val_precision": report.val_precision,
            "val_recall": report.val_recall, "val_f1": report.val_f1, "val_f1_calibrated": report.val_f1_calibrated,
            "val_threshold": report.val_threshold, "learning_rate": report.learning_rate,
            "images_per_second": report.images_per_second,
        }, step=report.epoch)

    @staticmethod
    def log_model(model: Segmenter, spec: ModelSpec, example: np.ndarray, model_dir: Path) -> str:
        """Logs the model (normalisation, member networks, flips: one module) in torch.export format,
        with a signature whose batch, height and width are free (so the registered model maps any
        scene window whose sides are multiples of 32), an input example and the input contract as
        model metadata; the state dict and its JSON description go beside it under ``weights/`` so
        the exact model can also be rebuilt from the registry by name."""
        model = model.cpu().eval()
        metadata = model_metadata(spec)
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, spec.in_channels, -1, -1), "+".join(spec.bands))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, spec.num_classes, -1, -1), "class_probability")]),
        )
        # Explicit requirements: inferring them costs seconds per model and trips on "+cpu" builds.
        requirements = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]
        # A batch of at least 2 keeps the exported batch dimension dynamic (1 is specialised); NaN
        # (no data) is replaced so the example shows a plain input.
        example = np.nan_to_num(np.concatenate([example, example])[: max(2, len(example))], nan=0.0)
        info = mlflow.pytorch.log_model(model, name="model", input_example=example, signature=signature,
                                        pip_requirements=requirements, metadata=metadata)
        mlflow.log_artifacts(str(model_dir), artifact_path="weights")
        return info.model_uri

    def log_report(self, run_name: str, directory: Path, metrics: dict[str, float], tags: dict[str, str]) -> str:
        """Logs an experiment report (its folder as artifacts, its headline figures as metrics) in a
        run of its own; returns the run id."""
        with mlflow.start_run(experiment_id=self.experiment_id(), run_name=run_name, tags=tags) as run:
            mlflow.log_metrics(metrics)
            mlflow.log_artifacts(str(directory), artifact_path="report")
        return run.info.run_id

    def download_model(self, alias: str, destination: Path) -> tuple[Path, int, str]:
        """Fetches the state dict and description (``weights/``) of the registered model version
        that ``alias`` points at.

        Returns:
            The local folder (loadable with ``training.checkpoint.load_model``), the version and its run id.
        """
        model = resolve_model(f"models:/{self.registered_model_name}@{alias}", destination, self.tracking_uri)
        # A models:/ reference resolves to a registered version, and to the run its weights were downloaded from.
        assert model.version is not None and model.run_id is not None
        return model.folder, model.version, model.run_id

    def register_champion(self, run_id: str, tags: dict[str, str], description: str = "") -> tuple[str, str]:
        """Registers a run's model and points the ``champion`` alias at the new version.

        Returns:
            The version number and the ``models:/<name>@champion`` URI.
        """
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        version = mlflow.register_model(f"runs:/{run_id}/model", self.registered_model_name, tags=tags)
        client = mlflow.MlflowClient()
        if description:
            client.update_model_version(self.registered_model_name, version.version, description=description)
        client.set_registered_model_alias(self.registered_model_name, CHAMPION_ALIAS, version.version)
        return version.version, f"models:/{self.registered_model_name}@{CHAMPION_ALIAS}"
