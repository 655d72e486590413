"""Resources: where the data lives, and the MLflow tracking store."""


import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from dagster import ConfigurableResource, InitResourceContext, MetadataValue
from pydantic import Field

from landslide_pipeline.layout import DataLayout
from landslide_pipeline.mapping.landslide_map import mapping_alias
from landslide_pipeline.model_store import (
    DEFAULT_TRACKING_URI,
    check_tracking_store,
    log_model,
    resolve_model,
    resolve_tracking_uri,
)
from landslide_pipeline.nn.segmenter import Segmenter
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.settings import StorageSettings
from landslide_pipeline.storage import target_lock
from landslide_pipeline.training.checkpoint import ModelSpec
from landslide_pipeline.training.evaluate import cross_validation_metrics, fold_rows, fold_test_metrics
from landslide_pipeline.training.loop import EpochReport

CHAMPION_ALIAS = "champion"
#: The same choice in the second-best architecture: what would take over.
CHALLENGER_ALIAS = "challenger"
#: Tags that describe one fold's run, not the cross-validation as a whole.
PER_FOLD_TAGS = frozenset({"dagster.run_id", "dagster.partition", "fold", "landslide.checkpoint"})


def metric_name(text: str) -> str:
    """``text`` as an MLflow metric name: characters MLflow refuses (the ``@`` of a variant key,
    ``linknet@rgb``) become underscores."""
    return re.sub(r"[^\w\-. :/]", "_", text)


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
    data_root: str = Field(default=StorageSettings.data_dir,
                           description="The data folder, whose saved models must find their runs in the store.")

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Stops a run at its start when the store lost runs that models on disk were logged in."""
        checked = check_tracking_store(DataLayout(Path(self.data_root).resolve()).models, self.tracking_uri)
        if context.log is not None and checked:
            context.log.debug(f"tracking store holds the {checked} runs of the models on disk")

    def resolved_tracking_uri(self) -> str:
        return resolve_tracking_uri(self.tracking_uri)

    def run_url(self, run_id: str) -> MetadataValue:
        """A link to the run's page in the MLflow UI (the tracking server's, else ``make mlflow-ui``'s)."""
        return MetadataValue.url(MlflowLinks(self.resolved_tracking_uri(), self.experiment_id()).run_url(run_id))

    def artifact_location(self) -> str:
        """Where a new experiment keeps its model files: a URI (``s3://...``,
        ``mlflow-artifacts:/...`` for a tracking server's proxied store) passed through unchanged;
        a local folder made absolute (as a ``file://`` URI)."""
        if "://" in self.artifact_root or self.artifact_root.startswith("mlflow-artifacts:"):
            return self.artifact_root
        artifacts = Path(self.artifact_root).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        return artifacts.as_uri()

    def experiment_id(self) -> str:
        """The experiment, created on first use. Concurrent first uses (fold runs starting together)
        do not race: the look-up (whose first call creates a new SQLite store's tables) and the
        creation happen under a lock in the data folder, and an experiment another client created
        meanwhile is taken."""
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        with target_lock(self._lock("experiment")):
            experiment = mlflow.get_experiment_by_name(self.experiment_name)
            if experiment is not None:
                return experiment.experiment_id
            try:
                return mlflow.create_experiment(self.experiment_name, artifact_location=self.artifact_location())
            except mlflow.exceptions.MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                created = mlflow.get_experiment_by_name(self.experiment_name)
                assert created is not None  # "already exists": another client just created it
                return created.experiment_id

    def _lock(self, name: str) -> Path:
        lock = DataLayout(Path(self.data_root).resolve()).tracking_lock(name)
        lock.parent.mkdir(parents=True, exist_ok=True)
        return lock

    def parent_run_id(self, group: str, run_name: str, tags: dict[str, str]) -> str:
        """Finds or creates the parent run that gathers the folds of one cross-validation; fold
        runs starting together get one parent (find-or-create under a lock in the data folder,
        which workers share)."""
        experiment_id = self.experiment_id()
        with target_lock(self._lock(group)):
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
    def fold_run(self, group: str, parent_name: str, run_name: str, tags: dict[str, str],
                 resuming: bool = False) -> Iterator[mlflow.ActiveRun]:
        """A child run of the cross-validation's parent run; closed (FAILED on error) on exit.

        Earlier runs of the same fold and checkpoint (tag ``landslide.checkpoint``) that never
        finished (their process was killed, so MLflow still says RUNNING) are continued when
        training resumes from that checkpoint, so one run holds the whole history; otherwise
        they are marked KILLED.
        """
        parent = self.parent_run_id(group, parent_name, tags)
        unfinished = self._unfinished_runs(parent, tags.get("fold", ""), tags.get("landslide.checkpoint", ""))
        client = mlflow.MlflowClient()
        continued = unfinished.pop(0) if resuming and unfinished else None
        for run_id in unfinished:
            client.set_terminated(run_id, status="KILLED")
        with mlflow.start_run(run_id=continued, experiment_id=self.experiment_id(), run_name=run_name,
                              tags=tags, parent_run_id=parent, nested=True) as run:
            yield run

    def _unfinished_runs(self, parent: str, fold: str, checkpoint_key: str) -> list[str]:
        """Runs of ``fold`` under ``parent`` for ``checkpoint_key`` still marked RUNNING, newest first."""
        if not (fold and checkpoint_key):
            return []
        runs = mlflow.search_runs([self.experiment_id()], output_format="list", order_by=["attributes.start_time DESC"],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent}' and tags.fold = '{fold}' and "
                                                f"tags.`landslide.checkpoint` = '{checkpoint_key}' and "
                                                "attributes.status = 'RUNNING'")
        return [r.info.run_id for r in runs]

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
        """Logs the model into the active run (``model_store.log_model``); returns its URI."""
        return log_model(model, spec, example, model_dir)

    def log_report(self, run_name: str, directory: Path, metrics: dict[str, float], tags: dict[str, str]) -> str:
        """Logs an experiment report (its folder as artifacts, its headline figures as metrics) in a
        run of its own; returns the run id."""
        with mlflow.start_run(experiment_id=self.experiment_id(), run_name=run_name, tags=tags) as run:
            mlflow.log_metrics({metric_name(name): value for name, value in metrics.items()})
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

    def log_evaluation(self, table: pd.DataFrame) -> None:
        """Adds the evaluation to the runs: each fold run its test-split scores, each
        cross-validation's parent run the mean and std over folds and the cross-validated F1."""
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        client = mlflow.MlflowClient()
        for run_id, metrics in fold_test_metrics(table).items():
            for key, value in metrics.items():
                client.log_metric(run_id, key, value)
        folds = fold_rows(table)
        for (source, variant), metrics in cross_validation_metrics(table).items():
            run_ids = folds.loc[(folds["label_source"] == source) & (folds["architecture"] == variant), "mlflow_run_id"]
            parent = client.get_run(run_ids.iloc[0]).data.tags.get("mlflow.parentRunId") if len(run_ids) else None
            if parent is not None:
                for key, value in metrics.items():
                    client.log_metric(parent, key, value)

    def register_model(self, run_id: str, tags: dict[str, str], description: str = "",
                       aliases: Sequence[str] = (CHAMPION_ALIAS,)) -> str:
        """Registers a run's model and points each of ``aliases`` at the new version; returns the
        version number (load it with ``models:/<name>@<alias>``)."""
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        version = mlflow.register_model(f"runs:/{run_id}/model", self.registered_model_name, tags=tags)
        client = mlflow.MlflowClient()
        if description:
            client.update_model_version(self.registered_model_name, version.version, description=description)
        for alias in aliases:
            client.set_registered_model_alias(self.registered_model_name, alias, version.version)
        return version.version

    def mapping_model(self, requested: str, has_dem: bool) -> tuple[str, dict[str, str]]:
        """The alias to map a survey with (``mapping.landslide_map.mapping_alias``: ``requested``,
        or its image-only twin for a survey without a DEM) and its version's tags."""
        tags: dict[str, dict[str, str]] = {}

        def alias_bands(alias: str) -> list[str] | None:
            found = self.alias_tags(alias)
            if found is None:
                return None
            tags[alias] = found
            return found.get("bands", "").split(",")

        alias = mapping_alias(requested, has_dem, alias_bands)
        return alias, tags[alias]

    def alias_tags(self, alias: str) -> dict[str, str] | None:
        """The tags of the version ``alias`` points at (``bands``, ``inputs``, ...), or None when
        no version has that alias."""
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        try:
            version = mlflow.MlflowClient().get_model_version_by_alias(self.registered_model_name, alias)
        except mlflow.exceptions.MlflowException:
            return None
        return dict(version.tags)
