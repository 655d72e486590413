"""Finding a saved model wherever it is: a model folder, an MLflow run, or a registered model.

Every model the pipeline logs to MLflow carries its folder (``weights.pt`` + ``model.json``, see
``training.checkpoint``) as the run's ``weights/`` artifacts, so any of these references resolves
to a local folder that ``training.checkpoint.load_model`` rebuilds exactly:

- a folder holding ``model.json`` (e.g. ``data/models/manual/linknet/ensemble``);
- ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (the registry);
- ``runs:/<run id>`` or a bare 32-hex run id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from landslide_pipeline.layout import MODEL_DESCRIPTION
from landslide_pipeline.nn.segmenter import Segmenter
from landslide_pipeline.settings import StorageSettings
from landslide_pipeline.storage import atomic_file
from landslide_pipeline.training.checkpoint import ModelSpec, load_model, read_spec

#: The MLflow store of a project checkout, relative to its root (``make mlflow-ui`` opens it).
DEFAULT_TRACKING_URI = StorageSettings.tracking_uri
WEIGHTS_ARTIFACTS = "weights"
#: The registered model the champion and its aliases belong to.
REGISTERED_MODEL = "landslide-segmenter"
#: Input sides must be multiples of this (the encoders' five halvings).
TILE_MULTIPLE = 32
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


class TrackingStoreLostError(RuntimeError):
    """The MLflow store lacks runs that the models on disk were logged in: it was reset or lost."""


def runs_named_on_disk(models_dir: Path) -> dict[str, Path]:
    """MLflow run id -> the saved model folder that names it (its own run and its members' runs)."""
    runs: dict[str, Path] = {}
    for description in sorted(Path(models_dir).glob(f"*/*/*/{MODEL_DESCRIPTION}")):
        data = json.loads(description.read_text())
        for run_id in [data.get("mlflow_run_id"), *(m.get("mlflow_run_id") for m in data.get("members", []))]:
            if run_id:
                runs.setdefault(run_id, description.parent)
    return runs


def check_tracking_store(models_dir: Path, tracking_uri: str) -> int:
    """Checks that the tracking store holds every run the models on disk were logged in.

    An MLflow SQLite store that was deleted comes back empty without a word; what the pipeline
    then does with it (register a champion, map with ``@champion``) fails far from the cause, or
    quietly starts a history without the models it already has.

    Returns:
        The number of runs checked.

    Raises:
        TrackingStoreLostError: a run is missing: restore the store, or re-register the models on
            disk (``landslide reregister``).
    """
    runs = runs_named_on_disk(models_dir)
    if not runs:
        return 0
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    client = mlflow.MlflowClient()
    missing = [run_id for run_id in runs if not _run_exists(client, run_id)]
    if missing:
        raise TrackingStoreLostError(
            f"tracking store reset or lost: {len(missing)} of the {len(runs)} MLflow runs that the models in "
            f"{models_dir} were logged in are not in {tracking_uri} (e.g. run {missing[0]} of {runs[missing[0]]}); "
            "restore the store (its database and artifacts), or re-register the models on disk into it with "
            "`landslide reregister`")
    return len(runs)


def _run_exists(client: mlflow.MlflowClient, run_id: str) -> bool:
    try:
        client.get_run(run_id)
    except mlflow.exceptions.MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


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


def log_model(model: Segmenter, spec: ModelSpec, example: np.ndarray, model_dir: Path) -> str:
    """Logs a model into the active MLflow run; returns its URI.

    The model (normalisation, member networks, flips: one module) goes in torch.export format, with
    a signature whose batch, height and width are free (so the registered model maps any scene
    window whose sides are multiples of 32), an input example and the input contract as model
    metadata; the state dict and its JSON description go beside it under ``weights/`` so the exact
    model can also be rebuilt from the registry by name.
    """
    model = model.cpu().eval()
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, spec.in_channels, -1, -1), "+".join(spec.bands))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, spec.num_classes, -1, -1), "class_probability")]),
    )
    # Explicit requirements: inferring them costs seconds per model and trips on "+cpu" builds.
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]
    # A batch of at least 2 keeps the exported batch dimension dynamic (1 is specialised); NaN
    # (no data) is replaced so the example shows a plain input.
    example = np.nan_to_num(np.concatenate([example, example])[: max(2, len(example))], nan=0.0)
    # No serving-input validation: MLflow reloads the exported model to run the example through its
    # JSON serving path, which this flavor refuses for tensors anyway ("does not support List or Dict
    # input types"); it cost ~10 s per model logged (measured: 23 s -> 12 s for a 2-member ensemble).
    info = mlflow.pytorch.log_model(model, name="model", input_example=example, signature=signature,
                                    pip_requirements=requirements, metadata=model_metadata(spec),
                                    validate_serving_input=False)
    mlflow.log_artifacts(str(model_dir), artifact_path=WEIGHTS_ARTIFACTS)
    return info.model_uri


def run_metrics(run_id: str, tracking_uri: str) -> dict[str, float]:
    """The latest metrics of a model's MLflow run; empty when the run is not in this store."""
    if not run_id:
        return {}
    client = mlflow.MlflowClient(resolve_tracking_uri(tracking_uri))
    if not _run_exists(client, run_id):
        return {}
    return dict(client.get_run(run_id).data.metrics)


def model_summary(spec: ModelSpec, reference: str, version: int | None, metrics: dict[str, float]) -> list[str]:
    """What a user of the model must know, as lines: architecture, inputs and their normalisation,
    decision threshold, provenance and the run's headline metrics."""
    lines = [f"model          {reference}" + (f" (registered version {version})" if version is not None else ""),
             f"kind           {spec.kind}: {spec.architecture}, {len(spec.members)} member(s), "
             f"trained on {spec.label_source} labels",
             f"input          float32 (N, {spec.in_channels}, H, W), H and W multiples of {TILE_MULTIPLE}; "
             f"image bands scaled from {spec.image_scaling} imagery; NaN where there is no data",
             f"bands          {', '.join(spec.bands)}",
             f"output         (N, {spec.num_classes}, H, W) class probabilities; landslide where p > {spec.threshold:g}"
             + (" (mean over flips)" if spec.flips else "")]
    for member in spec.members:
        norm = ", ".join(f"{b} {m:.3g}±{sd:.3g}" for b, m, sd in zip(spec.bands, member.mean, member.std))
        lines.append(f"member fold {member.fold}  {member.architecture} width {member.width:g}, "
                     f"{member.parameters:,} parameters, run {member.mlflow_run_id or '-'}; normalisation {norm}")
    lines.append(f"mlflow run     {spec.mlflow_run_id or '-'}")
    shown = {k: v for k, v in sorted(metrics.items()) if k.startswith(("test_", "val_", "cv_")) or k in ("f1", "best_val_f1")}
    if shown:
        lines.append("metrics        " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    return lines


def reregister_models(models_dir: Path, experiment_id: str) -> dict[Path, str]:
    """Logs every saved model under ``models_dir`` into a new run of ``experiment_id`` (in the
    current tracking store) and points its ``model.json`` at that run.

    For a store that was lost: fold models go first, so an ensemble's members are pointed at their
    new runs too. Each ``model.json`` is rewritten atomically. Runs are tagged
    ``landslide.reregistered``; the evaluation table still names the old runs, so materialize
    ``evaluation_table`` (then ``champion_model``) again afterwards.

    Returns:
        Model folder -> its new run id.
    """
    folders = sorted(p.parent for p in Path(models_dir).glob(f"*/*/*/{MODEL_DESCRIPTION}"))
    folders.sort(key=lambda folder: folder.name == "ensemble")  # fold models first
    renamed: dict[str, str] = {}  # old run id -> new run id
    new_runs: dict[Path, str] = {}
    for folder in folders:
        spec = read_spec(folder)
        tags = {"architecture": spec.architecture, "fold": str(spec.fold), "label_source": spec.label_source,
                "landslide.reregistered": "true"}
        name = f"{folder.parent.name}-{folder.name}-{spec.label_source} (re-registered)"
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
            new_id = run.info.run_id
            if spec.kind == "single":
                renamed.update({spec.mlflow_run_id: new_id, spec.members[0].mlflow_run_id: new_id})
            members = [replace(m, mlflow_run_id=renamed.get(m.mlflow_run_id, m.mlflow_run_id)) for m in spec.members]
            spec = replace(spec, members=members, mlflow_run_id=new_id)
            with atomic_file(folder / MODEL_DESCRIPTION) as staging:
                staging.write_text(json.dumps(spec.to_dict(), indent=2))
            model, _ = load_model(folder)
            log_model(model, spec, np.zeros((2, spec.in_channels, 64, 64), dtype=np.float32), folder)
        new_runs[folder] = new_id
    return new_runs
