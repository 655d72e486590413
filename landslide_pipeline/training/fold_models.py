"""One fold model of a cross-validation, from its training tiles to a saved, calibrated model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from landslide_pipeline.nn.segmenter import NormalizedNetwork, Segmenter
from landslide_pipeline.training.checkpoint import ModelSpec, config_digest, member_spec, save_calibration, save_model
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.inputs import DEFAULT_INPUTS, ModelVariant, input_bands
from landslide_pipeline.training.loop import (
    EpochReport,
    FoldData,
    TrainingResult,
    fit_normalization,
    init_model,
    train_segmentation,
)
from landslide_pipeline.training.profiles import TrainingProfile


@dataclass
class FoldModel:
    """A trained fold model, its description and how its training went."""

    model: Segmenter
    spec: ModelSpec
    result: TrainingResult

    def save(self, directory: Path) -> None:
        """Weights, ``model.json`` and the validation histogram its threshold was chosen on."""
        save_model(directory, self.model, self.spec)
        if self.result.histogram is not None:
            save_calibration(directory, self.result.histogram)

    def facts(self) -> dict[str, Any]:
        """How training went, as plain values (e.g. for asset metadata)."""
        result, member = self.result, self.spec.members[0]
        return {
            "best_epoch": result.best_epoch, "best_val_f1": result.best_val_f1, "threshold": result.threshold,
            "val_f1_argmax": result.history[result.best_epoch - 1].val_f1, "parameters": self.spec.parameters,
            "normalization_mean": str([round(m, 4) for m in member.mean]),
            "normalization_std": str([round(m, 4) for m in member.std]),
            "train_seconds": round(result.seconds, 1), "resumed_from_epoch": result.resumed_from_epoch,
        }


class FoldTracker(Protocol):
    """Where a fold model's training is recorded (an MLflow run in the pipeline)."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Records the run's parameters."""
        ...

    def log_epoch(self, report: EpochReport) -> None:
        """Records one epoch's metrics."""
        ...

    def log_summary(self, **metrics: float) -> None:
        """Records the run's final metrics."""
        ...

    def log_model(self, model: Segmenter, spec: ModelSpec, example: np.ndarray, model_dir: Path) -> str:
        """Records the model; returns its URI."""
        ...


@dataclass(frozen=True)
class FoldRun:
    """One fold model to train: what, on which fold, how, and where it records and resumes.

    Attributes:
        architecture: A registry name.
        fold: The fold to validate on.
        profile: Width and training configuration.
        profile_name: The profile it was resolved from (recorded with the parameters).
        label_source: The training set's label source.
        inputs: The input set (``training.inputs``): which of the set's bands the model takes.
    """

    architecture: str
    fold: int
    profile: TrainingProfile
    profile_name: str
    label_source: str
    inputs: str = DEFAULT_INPUTS

    @property
    def variant(self) -> str:
        """The model variant's key: the architecture, with ``@<input set>`` unless the default."""
        return ModelVariant(self.architecture, self.inputs).key

    def config(self) -> dict[str, Any]:
        """The training configuration as recorded (and digested into the checkpoint's name)."""
        return {"profile": self.profile_name, "width": self.profile.width, "inputs": self.inputs,
                **self.profile.training.to_dict()}

    def group(self, samples: TrainingSet) -> str:
        """What folds of one cross-validation share: label source, variant, training set, config."""
        return f"{self.label_source}:{self.variant}:{samples.set_id}:{config_digest(self.config())}"

    def checkpoint_key(self, samples: TrainingSet) -> str:
        """Names the checkpoint: a resumed run continues only with the same training set and config."""
        return f"{samples.set_id}-{config_digest(self.config())}"


def train_fold(samples: TrainingSet, run: FoldRun, device: torch.device, tracker: FoldTracker, run_id: str,
               model_dir: Path, checkpoint: Path | None = None,
               on_epoch: Callable[[EpochReport], None] | None = None) -> tuple[FoldModel, str]:
    """Trains one fold model, records it with ``tracker`` and saves it into ``model_dir``.

    Returns:
        The fold model and the URI ``tracker`` gave the logged model.
    """
    data = fold_data(samples, run.fold, run.inputs)
    tracker.log_params({**run.config(), "architecture": run.architecture, "fold": run.fold, "n_train": len(data.train),
                        "n_val": len(data.val), "bands": ",".join(data.bands), "image_scaling": samples.image_scaling,
                        "device": str(device), "training_set_id": samples.set_id, "label_source": run.label_source})

    def epoch_done(report: EpochReport) -> None:
        if on_epoch is not None:
            on_epoch(report)
        tracker.log_epoch(report)

    trained = train_fold_model(samples, run.architecture, run.fold, run.profile, device, epoch_done, checkpoint, run_id,
                               run.inputs)
    result = trained.result
    tracker.log_summary(best_epoch=result.best_epoch, best_val_f1=result.best_val_f1, threshold=result.threshold,
                        train_seconds=result.seconds, parameters=trained.spec.parameters)
    trained.save(model_dir)
    example = samples.images[data.val[:2]][:, samples.band_indices(data.bands)]
    return trained, tracker.log_model(trained.model, trained.spec, example, model_dir)


def fold_data(samples: TrainingSet, fold: int, inputs: str | None = None) -> FoldData:
    """The training tiles (other folds) and validation tiles (this fold) of ``fold``, with the
    bands of input set ``inputs`` (all the set's bands when None).

    Raises:
        ValueError: the fold has no training or no validation tiles; the set lacks a band of ``inputs``.
    """
    train, val = samples.split(fold)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"fold {fold} has {len(train)} training and {len(val)} validation tiles: "
                         "it needs both (fewer folds, or more labelled tiles)")
    channels = None if inputs is None else samples.band_indices(input_bands(inputs, samples.bands))
    return FoldData(samples, train, val, channels)


def train_fold_model(samples: TrainingSet, architecture: str, fold: int, profile: TrainingProfile,
                     device: torch.device, on_epoch: Callable[[EpochReport], None] | None = None,
                     checkpoint: Path | None = None, mlflow_run_id: str = "", inputs: str | None = None) -> FoldModel:
    """Trains ``architecture`` on the other folds of ``samples``, normalised with their band
    statistics, keeps its best validation epoch and that epoch's calibrated threshold.

    Args:
        samples: The training set.
        architecture: A registry name.
        fold: The fold to validate on.
        profile: Width and training configuration.
        device: Where to train.
        on_epoch: Progress callback.
        checkpoint: Per-epoch training state (resumed from when it exists).
        mlflow_run_id: The MLflow run that records this model.
        inputs: The input set (``training.inputs``); every band of the set when None.
    """
    data = fold_data(samples, fold, inputs)
    training = profile.training
    model = NormalizedNetwork(fit_normalization(data),
                              init_model(architecture, len(data.bands), profile.width, training.seed))
    result = train_segmentation(model, data, training, device, on_epoch, checkpoint)
    member = member_spec(model.network, architecture, profile.width, fold, model.normalization,
                         best_epoch=result.best_epoch, train_seconds=result.seconds, mlflow_run_id=mlflow_run_id)
    spec = ModelSpec(list(data.bands), samples.image_scaling, [member], samples.label_source,
                     threshold=result.threshold, mlflow_run_id=mlflow_run_id)
    return FoldModel(Segmenter([model]).eval(), spec, result)
