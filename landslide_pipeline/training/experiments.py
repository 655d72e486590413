"""Cross-validated experiments over variants of one training set: input bands, training-set size.

A *variant* is a view of the training set: a subset of its input bands (study A, Table 7: RGB vs
RGB + DEM), or a cap on the number of original training tiles per fold (study B's training-set
size study: 100/200/300/400 tiles). Every variant x architecture x fold is trained with the same
loop and configuration as the fold models and scored on that fold's validation tiles and on the
held-out test tiles at its calibrated threshold, like the evaluation table. Size variants draw
their tiles at random (seeded) from each fold's training tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from landslide_pipeline.metrics import segmentation_metrics
from landslide_pipeline.nn import count_parameters
from landslide_pipeline.nn.segmenter import NormalizedNetwork, Segmenter
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.inputs import DEFAULT_INPUTS, INPUT_SETS, input_bands
from landslide_pipeline.training.loop import (
    EpochReport,
    FoldData,
    TrainingConfig,
    fit_normalization,
    init_model,
    score_histogram,
    train_segmentation,
)


@dataclass(frozen=True)
class Variant:
    """One view of the training set: which bands, and at most how many original training tiles."""

    name: str
    bands: tuple[str, ...]
    max_train_tiles: int | None = None


def band_variants(bands: Sequence[str]) -> list[Variant]:
    """Study A's Table 7: one variant per input set (``training.inputs``) the set's bands allow:
    the image alone (``rgb``), + elevation (``rgb-dem``), + slope (``rgb-slope``), + every
    terrain band (``rgb-terrain``, with hillshade and relief)."""
    variants = []
    for name, terrain in INPUT_SETS.items():
        if set(terrain) <= set(bands):
            variants.append(Variant(name, tuple(input_bands(name, bands))))
    return variants


def size_study_bands(bands: Sequence[str]) -> list[str]:
    """The bands the training-set size study trains on: the default input set's (image + slope)
    when the set has them, else the image bands."""
    return input_bands(DEFAULT_INPUTS if set(INPUT_SETS[DEFAULT_INPUTS]) <= set(bands) else "rgb", bands)


def size_variants(bands: Sequence[str], sizes: Sequence[int]) -> list[Variant]:
    """All bands, at most ``size`` original training tiles per fold, for each size."""
    if not sizes or min(sizes) < 1:
        raise ValueError(f"training-set sizes must be positive, got {list(sizes)}")
    return [Variant(f"{size} tiles", tuple(bands), size) for size in sorted(set(sizes))]


def variant_split(samples: TrainingSet, fold: int, variant: Variant, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Training and validation tile indices of ``fold`` under ``variant``, and the number of
    tiles trained on."""
    train_idx, val_idx = samples.split(fold)
    if variant.max_train_tiles is not None and variant.max_train_tiles < len(train_idx):
        train_idx = np.sort(np.random.default_rng([seed, fold]).choice(train_idx, variant.max_train_tiles, replace=False))
    return train_idx, val_idx, len(train_idx)


def run_variant_experiment(
    samples: TrainingSet,
    variants: Sequence[Variant],
    architectures: Sequence[str],
    n_folds: int,
    width: float,
    training: TrainingConfig,
    device: torch.device,
    on_model: Callable[[Variant, str, int], Callable[[EpochReport], None] | None] | None = None,
) -> list[dict[str, Any]]:
    """Trains and scores every variant x architecture x fold; returns evaluation rows.

    Args:
        samples: The training set (folds, test split).
        variants: Views of it to compare.
        architectures: Registry names.
        n_folds: Folds of the set.
        width: Model width multiplier.
        training: The training loop's configuration (augmentation included).
        device: Where to train.
        on_model: Called before each model with (variant, architecture, fold); may return an
            epoch callback (progress logging).

    Returns:
        Rows with variant, bands, train_tiles, architecture, fold, split, confusion counts at the
        model's calibrated threshold, the metrics derived from them, threshold, best_epoch,
        train_seconds and parameters.
    """
    band_index = {name: i for i, name in enumerate(samples.bands)}
    test_idx = samples.test_indices()
    rows: list[dict[str, Any]] = []
    for variant in variants:
        channels = [band_index[b] for b in variant.bands]
        for architecture in architectures:
            for fold in range(n_folds):
                train_idx, val_idx, n_tiles = variant_split(samples, fold, variant, training.seed)
                data = FoldData(samples, train_idx, val_idx, channels)
                model = NormalizedNetwork(fit_normalization(data),
                                          init_model(architecture, len(channels), width, training.seed))
                callback = on_model(variant, architecture, fold) if on_model else None
                result = train_segmentation(model, data, training, device, callback)
                common = {"variant": variant.name, "bands": "+".join(variant.bands), "train_tiles": n_tiles,
                          "architecture": architecture, "fold": fold, "best_epoch": result.best_epoch,
                          "train_seconds": result.seconds, "parameters": count_parameters(model.network)}
                segmenter = Segmenter([model])
                for split, idx in (("validation", val_idx), ("test", test_idx)):
                    if len(idx):
                        histogram = score_histogram(segmenter, samples.images, samples.scoring, idx,
                                                    device=device, channels=channels)
                        counts = histogram.counts_at(result.threshold)
                        rows.append({**common, "split": split, "n_tiles": len(idx), **counts.as_dict(),
                                     **segmentation_metrics(counts), "threshold": result.threshold})
    return rows

