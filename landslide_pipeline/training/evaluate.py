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
                        device: torch.device | None = None) -> list[dict[str, Any]]:
    """Evaluation-table rows of one fold model: on its fold's validation tiles and, when the
    training set has a held-out test split, on the test tiles. Each row holds confusion counts
    summed over the split's original tiles, the metrics derived from them, and the model's
    training facts."""
    device = device or pick_device()
    model, spec = load_model(model_dir, device)
    splits = {"validation": training_set.split(spec.fold)[1], "test": training_set.test_indices()}
    if len(splits["validation"]) == 0:
        raise ValueError(f"fold {spec.fold} has no validation tiles")
    rows = []
    for split, idx in splits.items():
        if len(idx) == 0:
            continue
        counts = confusion_counts(predict_masks(model, training_set.x[idx], device=device), training_set.y[idx])
        rows.append({
            "architecture": spec.architecture, "fold": spec.fold, "split": split, "label_source": spec.label_source,
            "n_tiles": len(idx), **counts.as_dict(), **segmentation_metrics(counts),
            "best_epoch": spec.best_epoch, "train_seconds": spec.train_seconds,
            "parameters": spec.parameters, "mlflow_run_id": spec.mlflow_run_id,
        })
    return rows


def summarise_by_architecture(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds of each architecture's scores, per split."""
    scores = ["precision", "recall", "f1", "iou", "kappa"]
    summary = table.groupby(["architecture", "split"])[scores].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    return summary.reset_index()


def pick_champion(table: pd.DataFrame) -> dict[str, Any]:
    """The fold model with the highest validation F1, then kappa, then the lowest
    architecture/fold. The test split plays no part: it stays an unbiased estimate."""
    ranked = table[table["split"] == "validation"].sort_values(["f1", "kappa", "architecture", "fold"], ascending=[False, False, True, True])
    return ranked.iloc[0].to_dict()
