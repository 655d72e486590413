"""Scoring a trained fold model on the validation tiles of its fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
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
    summed over the split's original tiles (against the set's reference masks when it has them,
    else its labels), the metrics derived from them, and the model's training facts.

    The model may come from another training set over the same tiles and folds (the label-source
    comparison scores manual and object-oriented models on the object-oriented set, whose
    reference is the manual masks)."""
    device = device or pick_device()
    model, spec = load_model(model_dir, device)
    splits = {"validation": training_set.split(spec.fold)[1], "test": training_set.test_indices()}
    if len(splits["validation"]) == 0:
        raise ValueError(f"fold {spec.fold} has no validation tiles")
    rows = []
    for split, idx in splits.items():
        if len(idx) == 0:
            continue
        predicted = predict_masks(model, training_set.x[idx], device=device)
        counts = confusion_counts(predicted, training_set.scoring_masks(idx))
        rows.append({
            "architecture": spec.architecture, "fold": spec.fold, "split": split, "label_source": spec.label_source,
            "reference": training_set.reference_source or training_set.label_source,
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


def compare_label_sources(table: pd.DataFrame, baseline: str, candidate: str) -> pd.DataFrame:
    """Per architecture and split: each label source's mean precision, recall, F1 and kappa over
    folds, and the candidate's relative change over the baseline ((candidate - baseline) /
    baseline, as study A reports +12 %), with the number of folds where the candidate's F1 is higher."""
    scores = ["precision", "recall", "f1", "kappa"]
    means = table.groupby(["architecture", "split", "label_source"])[scores].mean().unstack("label_source")
    rows = []
    for (architecture, split), row in means.iterrows():
        entry: dict[str, Any] = {"architecture": architecture, "split": split}
        for metric in scores:
            base, cand = row[(metric, baseline)], row[(metric, candidate)]
            entry |= {f"{metric}_{baseline}": base, f"{metric}_{candidate}": cand,
                      f"{metric}_change": (cand - base) / base if base else float("nan")}
        f1 = table[(table["architecture"] == architecture) & (table["split"] == split)].pivot(
            index="fold", columns="label_source", values="f1")
        entry["folds_candidate_better"] = int((f1[candidate] > f1[baseline]).sum())
        rows.append(entry)
    return pd.DataFrame(rows)


def predict_with_saved_model(model_dir: Path, x: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """Landslide masks (N, H, W) of a saved fold model on the input tiles ``x``."""
    device = device or pick_device()
    model, _ = load_model(model_dir, device)
    return predict_masks(model, x, device=device)


def best_fold(table: pd.DataFrame, architecture: str) -> int:
    """The fold whose model has the architecture's best validation F1."""
    rows = table[(table["architecture"] == architecture) & (table["split"] == "validation")]
    return int(rows.sort_values(["f1", "fold"], ascending=[False, True]).iloc[0]["fold"])
