"""Finding a saved model wherever it is: a model folder, an MLflow run, or a registered model.

Every model the pipeline logs to MLflow carries its folder (``weights.pt`` + ``model.json``, see
``training.checkpoint``) as the run's ``weights/`` artifacts, so any of these references resolves
to a local folder that ``training.checkpoint.load_model`` rebuilds exactly:

- a folder holding ``model.json`` (e.g. ``data/models/manual/linknet/ensemble``);
- ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (the registry);
- ``runs:/<run id>`` or a bare 32-hex run id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion

from landslide_pipeline.layout import MODEL_DESCRIPTION
from landslide_pipeline.settings import StorageSettings

#: The MLflow store of a project checkout, relative to its root (``make mlflow-ui`` opens it).
DEFAULT_TRACKING_URI = StorageSettings.tracking_uri
WEIGHTS_ARTIFACTS = "weights"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ModelNotFoundError(LookupError):
    """A model reference that names no model."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference made local."""

    folder: Path
    reference: str
    version: int | None = None  # the registry's version number, when the reference named one
    run_id: str | None = None


def resolve_tracking_uri(uri: str) -> str:
    """``uri`` with a relative SQLite path made absolute (MLflow resolves it against the working
    directory at each call otherwise)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = Path(uri[len(prefix):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return uri


def resolve_model(reference: str, destination: Path, tracking_uri: str = DEFAULT_TRACKING_URI) -> ResolvedModel:
    """A local folder holding the model that ``reference`` names (downloaded into ``destination``
    when it comes from MLflow).

    Raises:
        ModelNotFoundError: no such folder, registered model, alias, version or run, or a run
            without the model's ``weights/`` artifacts.
    """
    folder = Path(reference)
    if folder.is_dir():
        if not (folder / MODEL_DESCRIPTION).is_file():
            raise ModelNotFoundError(f"{folder}: a folder without {MODEL_DESCRIPTION} is not a saved model")
        return ResolvedModel(folder, reference)
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    client = mlflow.MlflowClient()
    version = None
    if reference.startswith("models:/"):
        version = _registered_version(client, reference)
        run_id = version.run_id
    elif reference.startswith("runs:/"):
        run_id = reference[len("runs:/"):].split("/")[0]
    elif _RUN_ID.match(reference):
        run_id = reference
    else:
        raise ModelNotFoundError(f"{reference!r} is neither a model folder, a models:/ or runs:/ URI, nor a run id")
    try:
        local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{WEIGHTS_ARTIFACTS}", dst_path=str(destination))
    except mlflow.exceptions.MlflowException as err:
        raise ModelNotFoundError(f"{reference}: run {run_id} has no {WEIGHTS_ARTIFACTS}/ model folder "
                                 f"in {tracking_uri} ({err.message})") from err
    return ResolvedModel(Path(local), reference, None if version is None else int(version.version), run_id)


def _registered_version(client: mlflow.MlflowClient, reference: str) -> ModelVersion:
    path = reference[len("models:/"):]
    try:
        if "@" in path:
            name, alias = path.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, _, number = path.partition("/")
        if not number:
            raise ModelNotFoundError(f"{reference}: give a version (models:/{name}/3) or an alias (models:/{name}@champion)")
        return client.get_model_version(name, number)
    except mlflow.exceptions.MlflowException as err:
        raise ModelNotFoundError(f"{reference}: not in the model registry ({err.message})") from err
