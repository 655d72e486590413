"""Small EvaluationTable-shaped frames for the report tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

PARAMETERS = {"unet": 1_940_000, "fcn": 520_000, "resunet": 2_400_000, "linknet": 1_100_000}


def evaluation_frame(architectures: tuple[str, ...] = ("unet", "fcn"), folds: int = 3,
                     label_sources: tuple[str, ...] = ("manual",), splits: tuple[str, ...] = ("validation", "test"),
                     seed: int = 0) -> pd.DataFrame:
    """One row per label source x architecture x fold x split, with consistent counts and scores."""
    rng = np.random.default_rng(seed)
    rows = []
    for source in label_sources:
        for architecture in architectures:
            for fold in range(folds):
                run_id = f"{source[:3]}{architecture}{fold}".ljust(32, "0")
                for split in splits:
                    tp, fp, fn = (int(v) for v in rng.integers(50, 500, size=3))
                    tn = 16_384 * 4 - tp - fp - fn
                    n = tp + fp + fn + tn
                    po = (tp + tn) / n
                    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
                    rows.append({
                        "architecture": architecture, "fold": fold, "split": split, "label_source": source, "inputs": "rgb-slope",
                        "reference": "manual", "n_tiles": 4, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
                        "precision": tp / (tp + fp), "recall": tp / (tp + fn), "f1": 2 * tp / (2 * tp + fp + fn),
                        "iou": tp / (tp + fp + fn), "accuracy": po, "kappa": (po - pe) / (1 - pe),
                        "threshold": 0.45, "precision_argmax": tp / (tp + fp), "recall_argmax": tp / (tp + fn),
                        "f1_argmax": 2 * tp / (2 * tp + fp + fn), "kappa_argmax": (po - pe) / (1 - pe),
                        "kind": "fold", "flips": False, "members": 1, "best_epoch": 3, "train_seconds": float(rng.uniform(10, 60)),
                        "parameters": PARAMETERS[architecture], "mlflow_run_id": run_id,
                    })
    return pd.DataFrame(rows)
