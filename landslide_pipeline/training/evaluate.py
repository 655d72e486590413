"""Scoring a trained fold model on the validation tiles of its fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from landslide_pipeline.metrics import confusion_counts, segmentation_metrics
from landslide_pipeline.training.checkpoint import load_model
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.loop import pick_device, predict_masks


def evaluate_fold_model(model_dir: Path, training_set: TrainingSet,
                        device: torch.device | None = None) -> dict[str, Any]:
    """One evaluation-table row: confusion counts summed over the fold's original tiles, the
    metrics derived from them, and the model's training facts."""
    device = device or pick_device()
    model, spec = load_model(model_dir, device)
    _, val_idx = training_set.split(spec.fold)
    if len(val_idx) == 0:
        raise ValueError(f"fold {spec.fold} has no validation tiles")
    prediction = predict_masks(model, training_set.x[val_idx], device=device)
    counts = confusion_counts(prediction, training_set.y[val_idx])
    return {
        "architecture": spec.architecture, "fold": spec.fold, "label_source": spec.label_source,
        "n_tiles": len(val_idx), **counts.as_dict(), **segmentation_metrics(counts),
        "best_epoch": spec.best_epoch, "train_seconds": spec.train_seconds,
        "parameters": spec.parameters, "mlflow_run_id": spec.mlflow_run_id,
    }


def summarise_by_architecture(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds of each architecture's scores."""
    scores = ["precision", "recall", "f1", "iou", "kappa"]
    summary = table.groupby("architecture")[scores].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    return summary.reset_index()


def pick_champion(table: pd.DataFrame) -> dict[str, Any]:
    """The evaluation row with the highest F1, then kappa, then the lowest architecture/fold."""
    ranked = table.sort_values(["f1", "kappa", "architecture", "fold"], ascending=[False, False, True, True])
    return ranked.iloc[0].to_dict()
