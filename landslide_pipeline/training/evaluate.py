"""Scoring saved models (fold models and fold ensembles) on the tiles of a training set.

Every row holds confusion counts summed over all pixels of a split at the model's calibrated
threshold, the metrics derived from them, and the arg-max decision's precision, recall, F1 and
kappa beside them (``*_argmax``). A fold model's threshold was chosen on its own validation fold,
so its validation scores at that threshold lean optimistic; the held-out test split is the honest
estimate, and the only split an ensemble is scored on (all its members trained on the other
folds' validation tiles).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from landslide_pipeline.layout import DataLayout, LabelSource
from landslide_pipeline.metrics.breakdown import complexity_scores, edge_density, size_class_recall
from landslide_pipeline.metrics.calibration import ProbabilityHistogram, decision_scores
from landslide_pipeline.nn.blocks import INPUT_MULTIPLE
from landslide_pipeline.nn.segmenter import Segmenter
from landslide_pipeline.training.checkpoint import ModelSpec, load_model
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.features import TERRAIN_BANDS
from landslide_pipeline.training.loop import pick_device, predict_masks, predict_probability, score_histogram

FOLD, ENSEMBLE = "fold", "ensemble"


def score_rows(model: Segmenter, spec: ModelSpec, training_set: TrainingSet, splits: dict[str, np.ndarray],
               device: torch.device | None = None) -> list[dict[str, Any]]:
    """Evaluation-table rows of ``model`` on each non-empty split of ``training_set``."""
    spec.check_input(len(training_set.bands), training_set.image_scaling, "the training set")
    rows = []
    for split, idx in splits.items():
        if len(idx) == 0:
            continue
        histogram = score_histogram(model, training_set.images, training_set.scoring, idx, device=device)
        rows.append({
            "architecture": spec.architecture, "kind": FOLD if spec.kind == "single" else ENSEMBLE,
            "fold": spec.fold, "split": split, "label_source": spec.label_source,
            "reference": training_set.reference_source or training_set.label_source, "n_tiles": len(idx),
            **decision_scores(histogram, spec.threshold), "flips": spec.flips, "members": len(spec.members),
            "best_epoch": spec.best_epoch if spec.kind == "single" else 0, "train_seconds": spec.train_seconds,
            "parameters": spec.parameters, "mlflow_run_id": spec.mlflow_run_id,
        })
    return rows


def evaluate_fold_model(model_dir: Path, training_set: TrainingSet,
                        device: torch.device | None = None) -> list[dict[str, Any]]:
    """Rows of one fold model: on its fold's validation tiles and, when the training set has a
    held-out test split, on the test tiles (against the set's reference masks when it has them,
    else its labels).

    The model may come from another training set over the same tiles and folds (the label-source
    comparison scores manual and object-oriented models on the object-oriented set, whose
    reference is the manual masks)."""
    device = device or pick_device()
    model, spec = load_model(model_dir, device)
    validation = training_set.split(spec.fold)[1]
    if len(validation) == 0:
        raise ValueError(f"fold {spec.fold} has no validation tiles")
    return score_rows(model, spec, training_set, {"validation": validation, "test": training_set.test_indices()},
                      device)


def evaluate_ensemble(model_dir: Path, training_set: TrainingSet,
                      device: torch.device | None = None) -> list[dict[str, Any]]:
    """The row of a fold ensemble on the held-out test split (none when the set has no test split)."""
    device = device or pick_device()
    model, spec = load_model(model_dir, device)
    return score_rows(model, spec, training_set, {"test": training_set.test_indices()}, device)


@dataclass(frozen=True)
class LabelledTile:
    """Input bands (C, H, W; NaN where there is no data), reference mask and input scaling of one tile."""

    features: np.ndarray
    mask: np.ndarray
    scaling: str


def score_tiles(model: Segmenter, spec: ModelSpec, tiles: Iterable[LabelledTile], what: str,
                batch_size: int = 8, device: torch.device | None = None) -> tuple[ProbabilityHistogram, int]:
    """The probability histogram of ``model`` over labelled tiles of any size, and how many there were.

    Tiles whose sides are not multiples of 32 (what the networks need) are padded with no data
    (the band mean, after normalisation) and only their own pixels are scored. Consecutive tiles of
    one shape are predicted as a batch.

    Raises:
        ModelInputError: a tile whose band count or input scaling breaks the model's contract.
    """
    device = device or pick_device()
    histogram, n_tiles = ProbabilityHistogram(), 0
    pending: list[LabelledTile] = []

    def flush() -> None:
        x = np.stack([_pad(t.features) for t in pending])
        _, probabilities = next(predict_probability(model, x, np.arange(len(x)), len(x), device))
        for tile, probability in zip(pending, probabilities):
            height, width = tile.mask.shape
            histogram.add(probability[:height, :width], tile.mask)
        pending.clear()

    for tile in tiles:
        spec.check_input(tile.features.shape[0], tile.scaling, what)
        if pending and (len(pending) == batch_size or pending[0].features.shape != tile.features.shape):
            flush()
        pending.append(tile)
        n_tiles += 1
    if pending:
        flush()
    return histogram, n_tiles


def _pad(features: np.ndarray) -> np.ndarray:
    height, width = features.shape[1:]
    padded = np.full((features.shape[0], -(-height // INPUT_MULTIPLE) * INPUT_MULTIPLE,
                      -(-width // INPUT_MULTIPLE) * INPUT_MULTIPLE), np.nan, dtype=np.float32)
    padded[:, :height, :width] = features
    return padded


def fold_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of single fold models (no ensembles)."""
    return table[table["kind"] == FOLD] if "kind" in table else table


def summarise_by_architecture(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over fold models of each architecture's scores, per split."""
    scores = ["precision", "recall", "f1", "iou", "kappa"]
    summary = fold_rows(table).groupby(["architecture", "split"])[scores].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    return summary.reset_index()


def cross_validation_f1(table: pd.DataFrame) -> pd.Series:
    """Per architecture, the F1 of its fold models' pooled out-of-fold validation predictions
    (confusion counts of every fold's validation tiles summed): the k-fold estimate of a model's score."""
    validation = fold_rows(table)
    validation = validation[validation["split"] == "validation"]
    counts = validation.groupby("architecture")[["tp", "fp", "fn"]].sum()
    return 2 * counts["tp"] / (2 * counts["tp"] + counts["fp"] + counts["fn"]).clip(lower=1)


def rank_architectures(table: pd.DataFrame) -> list[str]:
    """Architectures from the best cross-validated F1 down (ties by name)."""
    estimate = cross_validation_f1(table)
    return sorted(estimate.index, key=lambda a: (-estimate[a], a))


def pick_champion(table: pd.DataFrame, kind: str = ENSEMBLE, place: int = 0) -> dict[str, Any]:
    """The champion, chosen on validation only (the test split stays an unbiased estimate).

    The architecture with the best cross-validated F1 (``cross_validation_f1``) wins; the champion
    is its ensemble when ``kind`` is ``ensemble`` and the table has one, else its fold model with
    the highest validation F1, then kappa, then the lowest fold. An ensemble has no validation
    score of its own (every member trained on the other folds' validation tiles), so it is chosen
    by rule, not by score: averaging k models of one architecture is expected to beat them, and
    the table's test rows show by how much. ``place`` 1 gives the challenger: the same choice in
    the second-best architecture.

    Raises:
        IndexError: fewer than ``place + 1`` architectures in the table.
    """
    estimate = cross_validation_f1(table)
    architecture = rank_architectures(table)[place]
    candidates = table[table["architecture"] == architecture]
    if kind == ENSEMBLE and "kind" in table and (candidates["kind"] == ENSEMBLE).any():
        return {**candidates[candidates["kind"] == ENSEMBLE].iloc[0].to_dict(), "cv_f1": float(estimate[architecture])}
    folds = fold_rows(candidates)
    ranked = folds[folds["split"] == "validation"].sort_values(["f1", "kappa", "fold"], ascending=[False, False, True])
    return {**ranked.iloc[0].to_dict(), "cv_f1": float(estimate[architecture])}


def compare_label_sources(table: pd.DataFrame, baseline: str, candidate: str) -> pd.DataFrame:
    """Per architecture and split: each label source's mean precision, recall, F1 and kappa over
    folds, and the candidate's relative change over the baseline ((candidate - baseline) /
    baseline, as study A reports +12 %), with the number of folds where the candidate's F1 is higher."""
    scores = ["precision", "recall", "f1", "kappa"]
    table = fold_rows(table)
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
    """Landslide masks (N, H, W) of a saved model on the input tiles ``x``, at its threshold."""
    device = device or pick_device()
    model, spec = load_model(model_dir, device)
    return predict_masks(model, x, spec.threshold, device=device)


def best_fold(table: pd.DataFrame, architecture: str) -> int:
    """The fold whose model has the architecture's best validation F1."""
    rows = fold_rows(table)
    rows = rows[(rows["architecture"] == architecture) & (rows["split"] == "validation")]
    return int(rows.sort_values(["f1", "fold"], ascending=[False, True]).iloc[0]["fold"])


def read_evaluation_table(layout: DataLayout) -> pd.DataFrame:
    """The evaluation table the evaluation_table asset wrote."""
    return pd.read_parquet(layout.evaluation_table)


def fold_model_dirs(layout: DataLayout, source: str, architecture: str, n_folds: int) -> list[Path]:
    """The folders of an architecture's fold models.

    Raises:
        FileNotFoundError: a fold model is missing (naming the partition to materialize).
    """
    prefix = "" if source == LabelSource.MANUAL else f"{source}_"
    dirs = [layout.model(source, architecture, fold) for fold in range(n_folds)]
    for fold, model_dir in enumerate(dirs):
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir}: no trained model; materialize {prefix}trained_model "
                                    f"partition {architecture}|{fold} first")
    return dirs


def evaluate_models(layout: DataLayout, sources: Sequence[str], architectures: Sequence[str], n_folds: int,
                    samples: TrainingSet, ensembles: bool = False) -> pd.DataFrame:
    """Rows of every architecture x fold model of each label source, scored on ``samples``, and
    with ``ensembles`` of each architecture's fold ensemble on the test split.

    Raises:
        FileNotFoundError: a fold model or (with ``ensembles``) a fold ensemble is missing.
    """
    rows = []
    for source in sources:
        for architecture in architectures:
            for model_dir in fold_model_dirs(layout, source, architecture, n_folds):
                rows.extend(evaluate_fold_model(model_dir, samples))
            if ensembles:
                ensemble_dir = layout.ensemble(source, architecture)
                if not ensemble_dir.is_dir():
                    raise FileNotFoundError(f"{ensemble_dir}: no fold ensemble; materialize fold_ensembles first")
                rows.extend(evaluate_ensemble(ensemble_dir, samples))
    return pd.DataFrame(rows)


def best_fold_models(table: pd.DataFrame, layout: DataLayout, sources: Sequence[str],
                     architectures: Sequence[str]) -> dict[str, Path]:
    """``"<source> <architecture>"`` -> the folder of that model's best fold (by validation F1)."""
    return {f"{source} {a}": layout.model(source, a, best_fold(table[table["label_source"] == source], a))
            for a in architectures for source in sources}


def obia_training_set(layout: DataLayout) -> TrainingSet:
    """The object-oriented training set, which must keep the manual masks to score against.

    Raises:
        ValueError: it was built without manual reference masks.
    """
    samples = TrainingSet.load(layout.training_set(LabelSource.OBIA))
    if samples.reference_source != LabelSource.MANUAL:
        raise ValueError("the object-oriented training set has no manual reference masks: materialize "
                         "training_set before obia_training_set, on surveys with manual labels")
    return samples


def trained_architectures(layout: DataLayout, sources: Sequence[str], architectures: Sequence[str],
                          n_folds: int) -> tuple[list[str], dict[str, list[str]]]:
    """The architectures whose every fold model exists for every label source, and what the
    others miss (``"<source> fold <k>"``): training a subset of the architectures is normal, and
    evaluation, ensembles and reports take what has been trained.

    Raises:
        FileNotFoundError: no architecture has all its fold models.
    """
    complete, missing = [], {}
    for architecture in architectures:
        absent = [f"{s} fold {k}" for s in sources for k in range(n_folds)
                  if not layout.model(s, architecture, k).is_dir()]
        if absent:
            missing[architecture] = absent
        else:
            complete.append(architecture)
    if not complete:
        prefix = "" if list(sources) == [LabelSource.MANUAL] else "the trained_model assets of each label source: "
        raise FileNotFoundError(f"no architecture has all {n_folds} fold models under {layout.models}; materialize "
                                f"{prefix}trained_model for every fold of at least one architecture first")
    return complete, missing


def fold_test_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Fold model run id -> its scores on the held-out test split (``test_f1``, ...)."""
    test = fold_rows(table)
    test = test[(test["split"] == "test") & (test["mlflow_run_id"] != "")]
    return {r["mlflow_run_id"]: {f"test_{m}": float(r[m]) for m in ("precision", "recall", "f1", "iou", "kappa")}
            for _, r in test.iterrows()}


def cross_validation_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Architecture -> mean and std over its folds of every score per split, and ``cv_f1``."""
    summary = summarise_by_architecture(table)
    estimate = cross_validation_f1(table)
    metrics: dict[str, dict[str, float]] = {a: {"cv_f1": float(estimate[a])} for a in estimate.index}
    for row in summary.to_dict("records"):
        scores = {f"{row['split']}_{k}": float(v) for k, v in row.items()
                  if k not in ("architecture", "split") and pd.notna(v)}
        metrics.setdefault(row["architecture"], {}).update(scores)
    return metrics


def score_breakdown(samples: TrainingSet, models: Mapping[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each named model on the held-out test tiles (fold 0's validation tiles without a test
    split), broken down by landslide size and by background complexity (``metrics.breakdown``).

    Returns:
        (by landslide size, by background), each with a ``model`` column.
    """
    pool = samples.shown_indices()
    images, reference = samples.images[pool], samples.scoring_masks(pool)
    image_bands = [i for i, band in enumerate(samples.bands) if band not in TERRAIN_BANDS]
    density = edge_density(images[:, image_bands])
    sizes, backgrounds = [], []
    for name, model_dir in models.items():
        predicted = predict_with_saved_model(model_dir, images)
        sizes.append(size_class_recall(reference, predicted).assign(model=name))
        backgrounds.append(complexity_scores(reference, predicted, density).assign(model=name))
    return pd.concat(sizes, ignore_index=True), pd.concat(backgrounds, ignore_index=True)
