"""Accuracy per minute of training recipes: one fold model on Landslide4Sense RGB, scored on all
of ``validation``.

Usage: ``python bench/profile_sweep.py [--profile cpu] [--architecture linknet] [--fold 0]
[--set key=value ...]``

Builds the training set in memory from ``../shared/data/l4s_rgb`` the way the pipeline reads it
(the shipped ``l4s_rgb`` adapter; ``train`` dealt into 5 folds as ``training_set`` deals pre-cut
tiles, ``validation`` as the held-out test split), trains one fold model with the pipeline's own
loop (``training.fold_models.train_fold_model``) and scores it on every validation tile at its
calibrated threshold and at the arg-max. ``--set`` overrides any profile field (``epochs=20``,
``width=0.5``, ``loss=dice``, ``geometric_p=0``, ...). This is how the ``cpu`` profile was chosen
(README, "Choosing the CPU profile"). Run one at a time on idle cores: the minutes are the figure.

The last line is JSON: {"config", "minutes", "best_epoch", "threshold", "val_f1" (own fold,
calibrated), "f1", "precision", "recall", "f1_argmax"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "l4s_rgb"


def load_split(split: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Features (N, 3, H, W), masks (N, H, W) and input scaling of one l4s_rgb split."""
    from landslide_pipeline.datasets.adapter import ADAPTERS_DIR, load_adapter
    from landslide_pipeline.datasets.precut import read_labelled_pairs
    from landslide_pipeline.training.features import input_scaling, tile_features

    images, masks, scaling = [], [], None
    for pair in read_labelled_pairs(SHARED / split, load_adapter(ADAPTERS_DIR / "l4s_rgb.toml")):
        images.append(tile_features(pair.pixels, None, pair.invalid))
        masks.append(pair.mask)
        scaling = input_scaling(pair.pixels.dtype)
    return np.stack(images), np.stack(masks).astype(np.uint8), scaling


def training_set(folds: int, seed: int):
    """Train tiles in ``folds`` folds (as the pipeline deals pre-cut tiles), validation as the test split."""
    from landslide_pipeline.training.dataset import TrainingSet
    from landslide_pipeline.training.folds import assign_folds

    x_train, y_train, scaling = load_split("train")
    x_test, y_test, _ = load_split("validation")
    n_train, n_test = len(x_train), len(x_test)
    tiles = pd.DataFrame({
        "survey_id": ["l4s_train"] * n_train + ["l4s_validation"] * n_test,
        "tile_id": [f"t{i}" for i in range(n_train)] + [f"v{i}" for i in range(n_test)],
        "row_off": -1, "col_off": -1,
        "landslide_fraction": np.concatenate([y_train.mean(axis=(1, 2)), y_test.mean(axis=(1, 2))]),
    })
    tiles = assign_folds(tiles, folds, seed, "spatial", 256, test_surveys=("l4s_validation",))
    return TrainingSet(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test]), tiles,
                       ["red", "green", "blue"], scaling)


def parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` pairs; values are JSON where they parse (numbers, lists, true), else strings."""
    overrides = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--architecture", default="linknet")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--save", type=Path, default=None, help="also save the model into this folder")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"{SHARED} is absent: nothing to run", file=sys.stderr)
        return 2
    import torch

    from landslide_pipeline.metrics import segmentation_metrics
    from landslide_pipeline.metrics.calibration import ARGMAX_THRESHOLD
    from landslide_pipeline.training.fold_models import train_fold_model
    from landslide_pipeline.training.loop import score_histogram
    from landslide_pipeline.training.performance import retain_freed_memory
    from landslide_pipeline.training.profiles import resolve_profile

    retain_freed_memory()
    overrides = parse_overrides(args.set)
    profile = resolve_profile(args.profile, **overrides)
    samples = training_set(args.folds, 0)
    device = torch.device("cpu")
    started = time.perf_counter()

    def report(epoch) -> None:
        print(f"epoch {epoch.epoch}: loss {epoch.train_loss:.4f} val F1 {epoch.val_f1:.4f} arg-max, "
              f"{epoch.val_f1_calibrated:.4f} at {epoch.val_threshold:.3f}, {epoch.images_per_second:.1f} img/s, "
              f"{time.perf_counter() - started:.0f} s", flush=True)

    trained = train_fold_model(samples, args.architecture, args.fold, profile, device, report)
    minutes = (time.perf_counter() - started) / 60
    if args.save:
        trained.save(args.save)
    histogram = score_histogram(trained.model, samples.images, samples.masks, samples.test_indices(), device=device)
    calibrated = segmentation_metrics(histogram.counts_at(trained.spec.threshold))
    argmax = segmentation_metrics(histogram.counts_at(ARGMAX_THRESHOLD))
    print(json.dumps({
        "config": {"profile": args.profile, "architecture": args.architecture, "fold": args.fold, **overrides},
        "minutes": round(minutes, 2), "best_epoch": trained.result.best_epoch,
        "threshold": trained.spec.threshold, "val_f1": round(trained.result.best_val_f1, 4),
        "f1": round(calibrated["f1"], 4), "precision": round(calibrated["precision"], 4),
        "recall": round(calibrated["recall"], 4), "f1_argmax": round(argmax["f1"], 4),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
