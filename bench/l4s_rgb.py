"""The pipeline on real data: k-fold training on Landslide4Sense RGB, scored on its validation split.

Usage: ``python bench/l4s_rgb.py [--work /tmp/landslide-l4s] [--architectures unet,resunet,linknet]
[--folds 5] [--epochs N] [--augment-factor 2] [--profile cpu]``

It sets up two surveys in ``<work>/data/raw`` that read ``../shared/data/l4s_rgb`` in place (a
``survey.toml`` with ``kind = "tiles"`` and the shipped ``l4s_rgb`` adapter): ``l4s_train``
(1385 tiles, dealt into the folds) and ``l4s_validation`` (396 tiles, ``role = "test"``, so it is
the held-out test split). Then it materializes the whole asset chain through Dagster, exactly as
``make demo`` does, on a persistent instance in ``<work>/.dagster`` with MLflow in
``<work>/mlruns`` (open them with ``DAGSTER_HOME=<work>/.dagster dagster dev`` and
``mlflow ui --backend-store-uri sqlite:///<work>/mlruns/mlflow.db``).

Each fold model is scored on the whole ``l4s_rgb/validation`` split (the ``test`` rows of the
evaluation table: confusion counts summed over all its pixels, landslide class, threshold at the
arg-max). The figures to compare with: the Landslide4Sense U-Net baseline (F1 0.578 on the official
14-band data: a reference point, not like-for-like) and the peer library in ``../shared/anchors.md``
(U-Net/ResNet-18 0.626, LinkNet/ResNet-18 0.657, ~25 min of training each). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Lets the script run from a checkout where the package is not pip-installed.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data" / "l4s_rgb"
SURVEYS = {"l4s_train": ("train", "train"), "l4s_validation": ("validation", "test")}
L4S_BASELINE_F1 = 0.578
PEER_F1 = {"unet": 0.626, "linknet": 0.657}


def write_surveys(raw: Path) -> list[str]:
    """One survey.toml per split, reading the shared data in place."""
    for survey_id, (split, role) in SURVEYS.items():
        folder = raw / survey_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "survey.toml").write_text(
            f'kind = "tiles"\nrole = "{role}"\nsource = "{SHARED / split}"\nadapter = "l4s_rgb"\n')
    return list(SURVEYS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/landslide-l4s"))
    parser.add_argument("--architectures", default="unet,resunet,linknet")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    parser.add_argument("--augment-factor", type=int, default=2)
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"{SHARED} is absent: nothing to run", file=sys.stderr)
        return 2
    work = args.work.resolve()
    os.environ["DAGSTER_HOME"] = str(work / ".dagster")
    os.environ["LANDSLIDE_ARCHITECTURES"], os.environ["LANDSLIDE_FOLDS"] = args.architectures, str(args.folds)

    from dagster import DagsterInstance

    from landslide_pipeline.defs import build_definitions
    from landslide_pipeline.defs.evaluation_assets import read_evaluation_table
    from landslide_pipeline.defs.runner import run_chain
    from landslide_pipeline.demo import ensure_dagster_home
    from landslide_pipeline.layout import DataLayout
    from landslide_pipeline.settings import PipelineSettings
    from landslide_pipeline.training.evaluate import summarise_by_architecture

    ensure_dagster_home(work)
    settings = PipelineSettings.from_env()
    layout = DataLayout(work / "data")
    surveys = write_surveys(layout.raw)
    (work / "mlruns").mkdir(parents=True, exist_ok=True)
    defs = build_definitions(settings, str(layout.root), f"sqlite:///{work}/mlruns/mlflow.db", str(work / "mlruns" / "artifacts"))
    config = {
        "training_set": {"use_terrain": False, "augment_factor": args.augment_factor, "test_fraction": 0.0},
        "trained_model": {"profile": args.profile, **({"epochs": args.epochs} if args.epochs else {})},
    }
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def on_step(name: str, seconds: float) -> None:
        steps[name] = round(seconds, 1)
        print(f"[l4s] {name}: {seconds:.1f} s", flush=True)

    run_chain(defs, settings, DagsterInstance.get(), surveys, config, on_step)
    table = read_evaluation_table(layout)
    shown = table.drop(columns=["mlflow_run_id", "label_source"])
    print("\nEach fold model on its validation fold (l4s_rgb/train) and on l4s_rgb/validation (split 'test'):")
    print(shown.to_string(index=False, float_format="%.3f"))
    summary = summarise_by_architecture(table)
    print("\nMean and standard deviation over folds:")
    print(summary.to_string(index=False, float_format="%.3f"))
    test = table[table["split"] == "test"]
    per_arch = {
        arch: {"precision": round(float(g["precision"].mean()), 4), "recall": round(float(g["recall"].mean()), 4),
               "f1": round(float(g["f1"].mean()), 4), "f1_std": round(float(g["f1"].std()), 4),
               "f1_best_fold": round(float(g["f1"].max()), 4), "parameters": int(g["parameters"].iloc[0]),
               "train_seconds_per_fold": round(float(g["train_seconds"].mean()), 1),
               "peer_f1": PEER_F1.get(arch)}
        for arch, g in test.groupby("architecture")
    }
    print(f"\nLandslide4Sense U-Net baseline F1 {L4S_BASELINE_F1} (14 bands, official split); "
          f"peer library (RGB, this split): {PEER_F1}. Total {time.perf_counter() - started:.0f} s.")
    print(json.dumps({"bench": "l4s_rgb", "profile": args.profile, "epochs": args.epochs,
                      "augment_factor": args.augment_factor, "folds": args.folds, "validation": per_arch,
                      "steps_s": steps, "total_s": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
