"""One fold model of a cross-validation, from its training tiles to a saved, calibrated model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from landslide_pipeline.nn.segmenter import NormalizedNetwork, Segmenter
from landslide_pipeline.training.checkpoint import ModelSpec, member_spec, save_calibration, save_model
from landslide_pipeline.training.dataset import TrainingSet
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


def fold_data(samples: TrainingSet, fold: int) -> FoldData:
    """The training tiles (other folds) and validation tiles (this fold) of ``fold``.

    Raises:
        ValueError: the fold has no training or no validation tiles.
    """
    train, val = samples.split(fold)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"fold {fold} has {len(train)} training and {len(val)} validation tiles: "
                         "it needs both (fewer folds, or more labelled tiles)")
    return FoldData(samples, train, val)


def train_fold_model(samples: TrainingSet, architecture: str, fold: int, profile: TrainingProfile,
                     device: torch.device, on_epoch: Callable[[EpochReport], None] | None = None,
                     checkpoint: Path | None = None, mlflow_run_id: str = "") -> FoldModel:
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
    """
    data = fold_data(samples, fold)
    training = profile.training
    model = NormalizedNetwork(fit_normalization(data),
                              init_model(architecture, len(samples.bands), profile.width, training.seed))
    result = train_segmentation(model, data, training, device, on_epoch, checkpoint)
    member = member_spec(model.network, architecture, profile.width, fold, model[0], best_epoch=result.best_epoch,
                         train_seconds=result.seconds, mlflow_run_id=mlflow_run_id)
    spec = ModelSpec(list(samples.bands), samples.image_scaling, [member], samples.label_source,
                     threshold=result.threshold, mlflow_run_id=mlflow_run_id)
    return FoldModel(Segmenter([model]).eval(), spec, result)
