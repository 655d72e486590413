"""Scoring saved models (fold models and fold ensembles) on the tiles of a training set.

Every row holds confusion counts summed over all pixels of a split at the model's calibrated
threshold, the metrics derived from them, and the arg-max decision's precision, recall, F1 and
kappa beside them (``*_argmax``). A fold model's threshold was chosen on its own validation fold,
so its validation scores at that threshold lean optimistic; the held-out test split is the honest
estimate, and the only split an ensemble is scored on (all its members trained on the other
folds' validation tiles).

Every model of every label source is scored on one *scoring set* (``scoring_set``): the manual
training set when there is one (its tiles, folds and test split, against the manual masks: the
object-oriented and union sets inherit its folds, so a fold model of any source is validated on
tiles it never trained on), else the object-oriented set against its own labels on its held-out
tiles (the only reference a project without hand-drawn labels has: the scores then measure
agreement with the object-oriented labeller on unseen tiles, not ground truth). A model is one
label source x variant (``training.inputs.ModelVariant``: architecture and input set); the
``architecture`` column holds the variant's key (``linknet``, ``linknet@rgb``), ``inputs`` its
input set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from landslide_pipeline.layout import TRAINING_DESCRIPTION, DataLayout, LabelSource
from landslide_pipeline.metrics.breakdown import complexity_scores, edge_density, example_tiles, size_class_recall
from landslide_pipeline.metrics.calibration import ProbabilityHistogram, decision_scores
from landslide_pipeline.nn.blocks import INPUT_MULTIPLE
from landslide_pipeline.nn.segmenter import Segmenter
from landslide_pipeline.training.checkpoint import ModelSpec, load_model
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.features import TERRAIN_BANDS
from landslide_pipeline.training.inputs import ModelVariant, input_set_of
from landslide_pipeline.training.loop import pick_device, predict_masks, predict_probability, score_histogram

FOLD, ENSEMBLE = "fold", "ensemble"


def score_rows(model: Segmenter, spec: ModelSpec, training_set: TrainingSet, splits: dict[str, np.ndarray],
               device: torch.device | None = None) -> list[dict[str, Any]]:
    """Evaluation-table rows of ``model`` on each non-empty split of ``training_set`` (on the
    bands the model takes).

    Raises:
        ValueError: the set lacks a band the model takes.
    """
    channels = training_set.band_indices(spec.bands)
    spec.check_input(len(channels), training_set.image_scaling, "the training set")
    inputs = input_set_of(spec.bands)
    rows = []
    for split, idx in splits.items():
        if len(idx) == 0:
            continue
        histogram = score_histogram(model, training_set.images, training_set.scoring, idx, device=device,
                                    channels=channels)
        rows.append({
            "architecture": ModelVariant(spec.architecture, inputs).key, "inputs": inputs,
            "kind": FOLD if spec.kind == "single" else ENSEMBLE,
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

    The model may come from another training set with the same folds (every label source's models
    are scored on the scoring set, ``scoring_set``); it is fed the bands it takes."""
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


def _model_columns(table: pd.DataFrame) -> list[str]:
    """The columns that name one model's rows: label source (when the table has it) and variant."""
    return ["label_source", "architecture"] if "label_source" in table else ["architecture"]


def summarise_by_architecture(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over fold models of each model's scores (label source x
    variant), per split."""
    scores = ["precision", "recall", "f1", "iou", "kappa"]
    summary = fold_rows(table).groupby([*_model_columns(table), "split"])[scores].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    return summary.reset_index()


def cross_validation_f1(table: pd.DataFrame) -> pd.Series:
    """Per model (label source x variant, or variant in a table of one source), the F1 of its
    fold models' pooled out-of-fold validation predictions (confusion counts of every fold's
    validation tiles summed): the k-fold estimate of a model's score."""
    validation = fold_rows(table)
    validation = validation[validation["split"] == "validation"]
    counts = validation.groupby(_model_columns(table))[["tp", "fp", "fn"]].sum()
    return 2 * counts["tp"] / (2 * counts["tp"] + counts["fp"] + counts["fn"]).clip(lower=1)


def rank_models(table: pd.DataFrame) -> list[Any]:
    """Models (``(label source, variant)``, or variants in a table without a label source column)
    from the best cross-validated F1 down (ties by name)."""
    estimate = cross_validation_f1(table)
    return sorted(estimate.index, key=lambda m: (-estimate[m], m))


def pick_champion(table: pd.DataFrame, kind: str = ENSEMBLE, place: int = 0, inputs: str | None = None,
                  label_source: str | None = None) -> dict[str, Any]:
    """The champion, chosen on validation only (the test split stays an unbiased estimate).

    The model (label source x architecture x input set) with the best cross-validated F1
    (``cross_validation_f1``) wins: every model was scored on the same validation tiles against
    the same reference (``scoring_set``), so a model of object-oriented labels can win. The
    champion is its ensemble when ``kind`` is ``ensemble`` and the table has one, else its fold
    model with the highest validation F1, then kappa, then the lowest fold. An ensemble has no
    validation score of its own (every member trained on the other folds' validation tiles), so
    it is chosen by rule, not by score: averaging k models is expected to beat them, and the
    table's test rows show by how much. ``place`` 1 gives the challenger: the same choice in the
    second-best model. ``inputs`` and ``label_source`` restrict the choice to models of that
    input set or label source (the per-input-set aliases, e.g. ``champion-rgb``).

    Raises:
        IndexError: fewer than ``place + 1`` models to choose from.
    """
    if inputs is not None:
        table = table[table["inputs"] == inputs]
    if label_source is not None:
        table = table[table["label_source"] == label_source]
    estimate = cross_validation_f1(table)
    model = rank_models(table)[place]
    key = model if isinstance(model, tuple) else (model,)
    candidates = table[(table[_model_columns(table)] == pd.Series(key, index=_model_columns(table))).all(axis=1)]
    if kind == ENSEMBLE and "kind" in table and (candidates["kind"] == ENSEMBLE).any():
        return {**candidates[candidates["kind"] == ENSEMBLE].iloc[0].to_dict(), "cv_f1": float(estimate[model])}
    folds = fold_rows(candidates)
    ranked = folds[folds["split"] == "validation"].sort_values(["f1", "kappa", "fold"], ascending=[False, False, True])
    return {**ranked.iloc[0].to_dict(), "cv_f1": float(estimate[model])}


def label_source_summary(table: pd.DataFrame, baseline: str = LabelSource.MANUAL) -> pd.DataFrame:
    """Study A's Table 6 in long form: per variant trained on two or more label sources, split and
    label source, the mean precision, recall, F1 and kappa over folds, each score's relative
    change over ``baseline``'s ((source - baseline) / baseline, as study A reports +12 %; NaN
    when the variant has no ``baseline`` model), and the folds whose F1 beats the baseline's."""
    scores = ["precision", "recall", "f1", "kappa"]
    folds = compared_label_sources(table)
    means = folds.groupby(["architecture", "split", "label_source"])[scores].mean().reset_index()
    base = means[means["label_source"] == baseline].drop(columns="label_source")
    merged = means.merge(base, on=["architecture", "split"], how="left", suffixes=("", "_baseline"))
    for metric in scores:
        reference = merged[f"{metric}_baseline"]
        merged[f"{metric}_change"] = (merged[metric] - reference) / reference.where(reference > 0)
    f1 = folds.pivot_table(index=["architecture", "split", "fold"], columns="label_source", values="f1")
    better = {(a, split, source): int((f1.loc[(a, split)][source] > f1.loc[(a, split)][baseline]).sum())
              for a, split, source in zip(merged["architecture"], merged["split"], merged["label_source"])
              if baseline in f1.columns}
    merged["folds_better"] = [better.get(k, 0) for k in zip(merged["architecture"], merged["split"],
                                                            merged["label_source"])]
    return merged.drop(columns=[f"{m}_baseline" for m in scores])


def compared_label_sources(table: pd.DataFrame) -> pd.DataFrame:
    """The fold-model rows of the variants trained on two or more label sources."""
    folds = fold_rows(table)
    sources = folds.groupby("architecture")["label_source"].nunique()
    return folds[folds["architecture"].isin(sources.index[sources > 1])]


def predict_with_saved_model(model_dir: Path, x: np.ndarray, device: torch.device | None = None,
                             bands: Sequence[str] | None = None) -> np.ndarray:
    """Landslide masks (N, H, W) of a saved model on the input tiles ``x``, at its threshold.
    ``bands`` names the bands of ``x`` when they are more than the model takes (a training set's
    bands): the model's are picked from them."""
    device = device or pick_device()
    model, spec = load_model(model_dir, device)
    if bands is not None:
        x = x[:, [list(bands).index(b) for b in spec.bands]]
    return predict_masks(model, x, spec.threshold, device=device)


def best_fold(table: pd.DataFrame, architecture: str, label_source: str | None = None) -> int:
    """The fold whose model has the variant's best validation F1 (of ``label_source``'s models)."""
    rows = fold_rows(table)
    if label_source is not None:
        rows = rows[rows["label_source"] == label_source]
    rows = rows[(rows["architecture"] == architecture) & (rows["split"] == "validation")]
    return int(rows.sort_values(["f1", "fold"], ascending=[False, True]).iloc[0]["fold"])


def read_evaluation_table(layout: DataLayout) -> pd.DataFrame:
    """The evaluation table the evaluation_table asset wrote."""
    return pd.read_parquet(layout.evaluation_table)


def fold_model_dirs(layout: DataLayout, source: str, variant: str, n_folds: int) -> list[Path]:
    """The folders of a variant's fold models (``variant``: a ``ModelVariant`` key).

    Raises:
        FileNotFoundError: a fold model is missing (naming the partition to materialize).
    """
    dirs = [layout.model(source, variant, fold) for fold in range(n_folds)]
    for fold, model_dir in enumerate(dirs):
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir}: no trained model; materialize {LabelSource.asset_prefix(source)}"
                                    f"trained_model partition {variant}|{fold} first")
    return dirs


def evaluate_models(layout: DataLayout, models: Sequence[tuple[str, str]], n_folds: int, samples: TrainingSet,
                    ensembles: bool = False) -> pd.DataFrame:
    """Rows of every fold model of each ``(label source, variant)`` model, scored on ``samples``,
    and with ``ensembles`` of each one's fold ensemble on the test split.

    Raises:
        FileNotFoundError: a fold model or (with ``ensembles``) a fold ensemble is missing.
    """
    rows = []
    for source, variant in models:
        for model_dir in fold_model_dirs(layout, source, variant, n_folds):
            rows.extend(evaluate_fold_model(model_dir, samples))
        if ensembles:
            ensemble_dir = layout.ensemble(source, variant)
            if not ensemble_dir.is_dir():
                raise FileNotFoundError(f"{ensemble_dir}: no fold ensemble; materialize fold_ensembles first")
            rows.extend(evaluate_ensemble(ensemble_dir, samples))
    return pd.DataFrame(rows)


def best_fold_models(table: pd.DataFrame, layout: DataLayout) -> dict[str, Path]:
    """``"<source> <variant>"`` -> the folder of that model's best fold (by validation F1), for
    every model of the table."""
    models = fold_rows(table)[["label_source", "architecture"]].drop_duplicates()
    return {f"{source} {variant}": layout.model(source, variant, best_fold(table, variant, source))
            for source, variant in models.itertuples(index=False)}


def scoring_set(layout: DataLayout) -> TrainingSet:
    """The training set every model is scored on (module docstring): the manual one when it
    exists, else the object-oriented one (against its own labels), else the union one.

    Raises:
        FileNotFoundError: no training set at all.
    """
    for source in LabelSource.ALL:
        if (layout.training_set(source) / TRAINING_DESCRIPTION).is_file():
            return TrainingSet.load(layout.training_set(source))
    raise FileNotFoundError(f"no training set under {layout.root / 'training'}: materialize training_set or "
                            "obia_training_set first")


def trained_models(layout: DataLayout, sources: Sequence[str], variants: Sequence[str],
                   n_folds: int) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """The ``(label source, variant)`` models whose every fold model exists, and what the others
    miss (``"<source> <variant>"`` -> missing folds): training a subset of the partitions is
    normal, and evaluation, ensembles and reports take what has been trained. A model with no
    fold trained at all is left out silently (it was never started).

    Raises:
        FileNotFoundError: no model has all its fold models.
    """
    complete, missing = [], {}
    for source in sources:
        for variant in variants:
            absent = [f"fold {k}" for k in range(n_folds) if not layout.model(source, variant, k).is_dir()]
            if not absent:
                complete.append((source, variant))
            elif len(absent) < n_folds:
                missing[f"{source} {variant}"] = absent
    if not complete:
        raise FileNotFoundError(f"no model has all {n_folds} fold models under {layout.models}; materialize "
                                "trained_model (or obia_trained_model, union_trained_model) for every fold of at "
                                "least one partition's architecture first")
    return complete, missing


def fold_test_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Fold model run id -> its scores on the held-out test split (``test_f1``, ...)."""
    test = fold_rows(table)
    test = test[(test["split"] == "test") & (test["mlflow_run_id"] != "")]
    return {r["mlflow_run_id"]: {f"test_{m}": float(r[m]) for m in ("precision", "recall", "f1", "iou", "kappa")}
            for _, r in test.iterrows()}


def cross_validation_metrics(table: pd.DataFrame) -> dict[Any, dict[str, float]]:
    """Model (as ``cross_validation_f1`` indexes it) -> mean and std over its folds of every
    score per split, and ``cv_f1``."""
    summary = summarise_by_architecture(table)
    estimate = cross_validation_f1(table)
    columns = _model_columns(table)
    metrics: dict[Any, dict[str, float]] = {m: {"cv_f1": float(estimate[m])} for m in estimate.index}
    for row in summary.to_dict("records"):
        scores = {f"{row['split']}_{k}": float(v) for k, v in row.items()
                  if k not in (*columns, "split") and pd.notna(v)}
        model = tuple(row[c] for c in columns) if len(columns) > 1 else row[columns[0]]
        metrics.setdefault(model, {}).update(scores)
    return metrics


@dataclass(frozen=True)
class ScoreBreakdown:
    """Models scored by landslide size and background complexity (study B, Figs. 10-12), with the
    tiles and predictions to draw example panels from.

    Attributes:
        sizes: ``metrics.breakdown.size_class_recall`` rows per model (column ``model``).
        backgrounds: ``metrics.breakdown.complexity_scores`` rows per model.
        images: (N, C, H, W) the tiles scored (every band of the training set).
        reference: (N, H, W) their reference masks.
        predictions: Model name -> (N, H, W) predicted masks.
        titles: Tile ids.
        examples: Class name -> indices of example tiles (``metrics.breakdown.example_tiles``).
    """

    sizes: pd.DataFrame
    backgrounds: pd.DataFrame
    images: np.ndarray
    reference: np.ndarray
    predictions: dict[str, np.ndarray]
    titles: list[str]
    examples: dict[str, np.ndarray]


def score_breakdown(samples: TrainingSet, models: Mapping[str, Path]) -> ScoreBreakdown:
    """Each named model on the held-out test tiles (fold 0's validation tiles without a test
    split), broken down by landslide size and by background complexity (``metrics.breakdown``),
    with example tiles of each class."""
    pool = samples.shown_indices()
    images, reference = samples.images[pool], samples.scoring_masks(pool)
    image_bands = [i for i, band in enumerate(samples.bands) if band not in TERRAIN_BANDS]
    density = edge_density(images[:, image_bands])
    predictions = {name: predict_with_saved_model(model_dir, images, bands=samples.bands)
                   for name, model_dir in models.items()}
    sizes = [size_class_recall(reference, predicted).assign(model=name) for name, predicted in predictions.items()]
    backgrounds = [complexity_scores(reference, predicted, density).assign(model=name)
                   for name, predicted in predictions.items()]
    return ScoreBreakdown(pd.concat(sizes, ignore_index=True), pd.concat(backgrounds, ignore_index=True), images,
                          reference, predictions, [str(t) for t in samples.tiles["tile_id"].iloc[pool]],
                          example_tiles(reference, density))
