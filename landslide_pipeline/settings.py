"""Load-time settings: what shapes the asset graph itself (partitions), read from the environment.

Everything else (tile size, epochs, learning rate, ...) is run config on the assets, editable in
the Dagster launchpad. Architectures and the fold count define the model partitions, so they must
be known when the code location loads.

Storage locations (the data folder, the MLflow stores) are declared here once too, so the Dagster
resources, the demo and the ``landslide`` CLI agree on them.

Environment variables:
    LANDSLIDE_ARCHITECTURES: comma-separated registry names, one model partition each (default
        all four: ``linknet,unet,resunet,fcn``); what is trained is chosen per run, and evaluation
        takes the architectures whose every fold has been trained.
    LANDSLIDE_INPUT_SETS: comma-separated input sets (``training.inputs``), each crossed with every
        architecture in the model partitions (default ``rgb-slope,rgb``: ``linknet`` takes the image
        and slope, ``linknet@rgb`` the image alone, for surveys without a DEM).
    LANDSLIDE_FOLDS: number of cross-validation folds, at least 2 (default 5).
    LANDSLIDE_DATA: the data folder (default ``data``).
    MLFLOW_TRACKING_URI: MLflow's runs and registry (default ``sqlite:///mlruns/mlflow.db``).
    LANDSLIDE_ARTIFACT_ROOT: where new MLflow experiments keep model files (default ``mlruns/artifacts``).
    LANDSLIDE_DATA_ROOTS: folders, separated by ``os.pathsep``, that ``survey.toml`` ``source`` paths
        must lie in (default: unset, anywhere).
    LANDSLIDE_EXECUTOR, LANDSLIDE_CELERY_BROKER, LANDSLIDE_CELERY_BACKEND, LANDSLIDE_HEAVY_QUEUE,
        LANDSLIDE_K8S_GPUS: where a run's steps execute (``ExecutionSettings``; ``docs/deploy.md``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The environment variables read here: name -> (default, meaning).
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "LANDSLIDE_ARCHITECTURES": ("linknet,unet,resunet,fcn", "comma-separated architectures, one model partition "
                                "each: linknet, unet, resunet, fcn, unet-3x3 (study B's 34.5 M U-Net); training a "
                                "subset is normal, evaluation takes what has been trained"),
    "LANDSLIDE_INPUT_SETS": ("rgb-slope,rgb", "comma-separated input sets crossed with the architectures in the "
                             "model partitions: rgb, rgb-dem, rgb-slope (the default, key `linknet`), rgb-terrain "
                             "(key `linknet@rgb-terrain`)"),
    "LANDSLIDE_RETRAIN_CRON": ("0 2 * * *", "when the automation may rebuild the training sets (and so retrain the "
                               "trained model partitions) after labels changed: a burst of survey changes in "
                               "between causes one retraining (cron, UTC)"),
    "LANDSLIDE_EXPERIMENTS_CRON": ("0 3 * * 0", "when the automation may re-run the experiments (which train their "
                                   "own models) after the training set changed (cron, UTC; default weekly)"),
    "LANDSLIDE_FOLDS": ("5", "k of the k-fold cross-validation (at least 2)"),
    "LANDSLIDE_DATA": ("data", "the data folder: raw surveys and every output (relative: to the working directory)"),
    "MLFLOW_TRACKING_URI": ("sqlite:///mlruns/mlflow.db", "MLflow's store of runs and registered models"),
    "LANDSLIDE_ARTIFACT_ROOT": ("mlruns/artifacts", "where a new MLflow experiment keeps its model files"),
    "LANDSLIDE_DATA_ROOTS": ("", "folders (separated by ':') that survey.toml `source` paths must lie in; "
                                 "empty: anywhere (a workstation), set it for a shared drop folder"),
    "LANDSLIDE_EXECUTOR": ("default", "how a run executes its steps: default (Dagster's, in the run's process or one "
                           "process per step), celery (steps sent to Celery workers, deploy/) or k8s (one pod per step)"),
    "LANDSLIDE_CELERY_BROKER": ("redis://127.0.0.1:6379/0", "the Celery broker of the celery executor"),
    "LANDSLIDE_CELERY_BACKEND": ("redis://127.0.0.1:6379/1", "the Celery result backend of the celery executor"),
    "LANDSLIDE_HEAVY_QUEUE": ("cpu", "the Celery queue of the heavy steps (tiling, labelling, training, evaluation, "
                              "mapping, experiments): `gpu` where only GPU workers listen to it; light steps go to "
                              "Celery's `dagster` queue"),
    "LANDSLIDE_K8S_GPUS": ("1", "GPUs each training and mapping step requests on Kubernetes (k8s executor); 0 on a "
                           "cluster without GPUs"),
}


def _env(name: str) -> str:
    return os.environ.get(name, ENVIRONMENT[name][0])


@dataclass(frozen=True)
class PipelineSettings:
    """Settings that define the asset graph's partitions."""

    architectures: tuple[str, ...] = ("linknet", "unet", "resunet", "fcn")
    n_folds: int = 5
    input_sets: tuple[str, ...] = ("rgb-slope", "rgb")
    retrain_cron: str = "0 2 * * *"
    experiments_cron: str = "0 3 * * 0"

    def __post_init__(self) -> None:
        # Imported here: reading settings (e.g. storage paths) must not load torch.
        from landslide_pipeline.nn import available_architectures

        unknown = sorted(set(self.architectures) - set(available_architectures()))
        if unknown or not self.architectures:
            raise ValueError(
                f"unknown architectures {unknown}; choose from {available_architectures()}"
            )
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        from landslide_pipeline.training.inputs import check_input_set

        if not self.input_sets:
            raise ValueError("give at least one input set")
        for name in self.input_sets:
            check_input_set(name)
        from dagster._utils.schedules import is_valid_cron_string  # Dagster (pinned) checks crons this way

        for cron in (self.retrain_cron, self.experiments_cron):
            if not is_valid_cron_string(cron):
                raise ValueError(f"{cron!r} is not a cron schedule (LANDSLIDE_RETRAIN_CRON, LANDSLIDE_EXPERIMENTS_CRON)")

    @property
    def model_variants(self) -> list[str]:
        """The model partitions' keys: every architecture with every input set (``training.inputs``)."""
        from landslide_pipeline.training.inputs import variant_keys

        return variant_keys(self.architectures, self.input_sets)

    @classmethod
    def from_env(cls) -> PipelineSettings:
        """Reads LANDSLIDE_ARCHITECTURES, LANDSLIDE_FOLDS and LANDSLIDE_INPUT_SETS, falling back to the defaults."""
        names, folds, inputs = _env("LANDSLIDE_ARCHITECTURES"), _env("LANDSLIDE_FOLDS"), _env("LANDSLIDE_INPUT_SETS")
        try:
            n_folds = int(folds)
        except ValueError as err:
            raise ValueError(f"LANDSLIDE_FOLDS must be an integer, got {folds!r}") from err
        return cls(
            architectures=tuple(n.strip() for n in names.split(",") if n.strip()),
            n_folds=n_folds,
            input_sets=tuple(n.strip() for n in inputs.split(",") if n.strip()),
            retrain_cron=_env("LANDSLIDE_RETRAIN_CRON"),
            experiments_cron=_env("LANDSLIDE_EXPERIMENTS_CRON"),
        )


@dataclass(frozen=True)
class StorageSettings:
    """Where the pipeline keeps its files and its MLflow stores.

    Attributes:
        data_dir: The data folder (``layout.DataLayout``'s root).
        tracking_uri: MLflow's tracking store (runs and registry).
        artifact_root: Where a new MLflow experiment keeps its model files.
    """

    data_dir: str = ENVIRONMENT["LANDSLIDE_DATA"][0]
    tracking_uri: str = ENVIRONMENT["MLFLOW_TRACKING_URI"][0]
    artifact_root: str = ENVIRONMENT["LANDSLIDE_ARTIFACT_ROOT"][0]

    @classmethod
    def from_env(cls) -> StorageSettings:
        """Reads LANDSLIDE_DATA, MLFLOW_TRACKING_URI and LANDSLIDE_ARTIFACT_ROOT, falling back to the defaults."""
        return cls(_env("LANDSLIDE_DATA"), _env("MLFLOW_TRACKING_URI"), _env("LANDSLIDE_ARTIFACT_ROOT"))


@dataclass(frozen=True)
class ExecutionSettings:
    """Where a run's steps execute: this machine, Celery workers or Kubernetes pods.

    Attributes:
        executor: ``default`` (Dagster's own), ``celery`` or ``k8s`` (``defs.concurrency.build_executor``).
        celery_broker: The Celery broker (Redis in ``deploy/``).
        celery_backend: The Celery result backend.
        heavy_queue: The Celery queue of the heavy steps.
        k8s_gpus: GPUs a training or mapping step requests on Kubernetes.
    """

    executor: str = ENVIRONMENT["LANDSLIDE_EXECUTOR"][0]
    celery_broker: str = ENVIRONMENT["LANDSLIDE_CELERY_BROKER"][0]
    celery_backend: str = ENVIRONMENT["LANDSLIDE_CELERY_BACKEND"][0]
    heavy_queue: str = ENVIRONMENT["LANDSLIDE_HEAVY_QUEUE"][0]
    k8s_gpus: int = int(ENVIRONMENT["LANDSLIDE_K8S_GPUS"][0])

    EXECUTORS = ("default", "celery", "k8s")

    def __post_init__(self) -> None:
        if self.executor not in self.EXECUTORS:
            raise ValueError(f"LANDSLIDE_EXECUTOR must be one of {', '.join(self.EXECUTORS)}, got {self.executor!r}")
        if self.k8s_gpus < 0:
            raise ValueError(f"LANDSLIDE_K8S_GPUS must be 0 or more, got {self.k8s_gpus}")

    @classmethod
    def from_env(cls) -> ExecutionSettings:
        """Reads the LANDSLIDE_EXECUTOR family, falling back to the defaults."""
        gpus = _env("LANDSLIDE_K8S_GPUS")
        if not gpus.isdigit():
            raise ValueError(f"LANDSLIDE_K8S_GPUS must be a whole number, got {gpus!r}")
        return cls(_env("LANDSLIDE_EXECUTOR"), _env("LANDSLIDE_CELERY_BROKER"), _env("LANDSLIDE_CELERY_BACKEND"),
                   _env("LANDSLIDE_HEAVY_QUEUE"), int(gpus))


#: Dagster's own executor, on this machine.
DEFAULT_EXECUTION = ExecutionSettings()


def local_tracking_files(storage: StorageSettings) -> list[Path]:
    """The files of a local MLflow store (a SQLite file and the artifact folder); none for a server."""
    files = [Path(storage.artifact_root)] if "://" not in storage.artifact_root else []
    prefix = "sqlite:///"
    if storage.tracking_uri.startswith(prefix):
        files.append(Path(storage.tracking_uri[len(prefix):]))
    return files


#: The defaults: ``data/`` and ``mlruns/`` of the working directory.
DEFAULT_STORAGE = StorageSettings()


def allowed_data_roots() -> tuple[Path, ...] | None:
    """The folders ``survey.toml`` paths must lie in (LANDSLIDE_DATA_ROOTS), or None: anywhere."""
    roots = [r for r in _env("LANDSLIDE_DATA_ROOTS").split(os.pathsep) if r.strip()]
    return tuple(Path(r).expanduser().resolve() for r in roots) or None
