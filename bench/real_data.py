"""The pipeline on the real data sets of ``../shared/data``, end to end through Dagster.

Usage: ``python bench/real_data.py PRESET [--work /tmp/landslide-<preset>] [--architectures linknet]
[--folds 5] [--profile cpu] [--epochs N] [--draws N] [--width W] [--loss L]``

Each preset writes survey folders into ``<work>/data/raw`` whose ``survey.toml`` reads the shared
data in place, then materializes the whole chain exactly as ``make demo`` does, on a persistent
instance in ``<work>/.dagster`` with MLflow in ``<work>/mlruns`` (open them with
``DAGSTER_HOME=<work>/.dagster dagster dev`` and
``mlflow ui --backend-store-uri sqlite:///<work>/mlruns/mlflow.db``).

- ``l4s_rgb``: ``l4s_train`` (1385 Landslide4Sense RGB tiles, dealt into the folds) and
  ``l4s_validation`` (396 tiles, ``role = "test"``: the held-out test split). Each fold model and
  each fold ensemble is scored on the whole validation split (the ``test`` rows: confusion counts
  summed over all its pixels, landslide class, at the model's calibrated threshold; arg-max
  beside it). Compare with the Landslide4Sense U-Net baseline (F1 0.578 on the official 14-band
  data: a reference point, not like-for-like) and the peer library in ``../shared/anchors.md``
  (U-Net/ResNet-18 0.626, LinkNet/ResNet-18 0.657, ~25 min each).
- ``coseismic``: trains on the 20 Labelme-labelled earthquake tiles (``coseismic_labelme``, re-cut
  into 128 px tiles; 15 % held out) and maps ``coseismic_scene``, the 40 georeferenced crops of one
  2048 x 1280 scene from the same source, mosaicked: probability and mask COGs and polygons.
- ``l4s_h5``: a smoke test of multi-band input: the 6 original 14-band Landslide4Sense patches.

The default architecture is the ``cpu`` profile's (LinkNet); ``--architectures`` takes any
comma-separated registry names. The last line is JSON; besides the per-architecture test scores
of the fold models it holds ``champion`` (kind, f1, precision, recall, threshold: the registered
champion on the test split), ``cv_f1_mean`` (the champion architecture's mean validation F1 over
its folds: the cross-validated estimate) and ``train_minutes_total`` (wall time of every
``trained_model`` run).
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

SHARED = ROOT.parent / "shared" / "data"
#: survey id -> survey.toml, per preset ({shared} is the shared data folder).
PRESETS = {
    "l4s_rgb": {
        "l4s_train": 'kind = "tiles"\nrole = "train"\nsource = "{shared}/l4s_rgb/train"\nadapter = "l4s_rgb"\n',
        "l4s_validation": 'kind = "tiles"\nrole = "test"\nsource = "{shared}/l4s_rgb/validation"\nadapter = "l4s_rgb"\n',
    },
    "coseismic": {
        "coseismic_labelme": 'kind = "tiles"\nsource = "{shared}/coseismic_labelme"\nadapter = "coseismic_labelme"\n',
        "coseismic_scene": 'kind = "scene"\nsite = "coseismic"\nsource = "{shared}/coseismic_scene"\nimage = "*.tif"\n',
    },
    "l4s_h5": {
        "l4s_h5": 'kind = "tiles"\nsource = "{shared}/l4s_h5_samples"\nadapter = "l4s_h5_samples"\n',
    },
}
#: Training-set config per preset: pre-cut sets have no DEM; a test survey replaces the random test share.
TRAINING_SET = {"l4s_rgb": {"test_fraction": 0.0}, "coseismic": {}, "l4s_h5": {"fold_strategy": "random"}}
#: The input-band experiment on the 14-band patches: Sentinel-2 RGB (B4, B3, B2) vs RGB + slope (B13) + DEM (B14).
L4S_BAND_SETS = {"rgb": ["band_4", "band_3", "band_2"],
                 "rgb+terrain": ["band_4", "band_3", "band_2", "band_13", "band_14"]}
L4S_BASELINE_F1 = 0.578
PEER_F1 = {"unet": 0.626, "linknet": 0.657}


def write_surveys(raw: Path, preset: str) -> list[str]:
    """One survey.toml per survey of the preset, reading the shared data in place."""
    for survey_id, text in PRESETS[preset].items():
        folder = raw / survey_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "survey.toml").write_text(text.format(shared=SHARED))
    return list(PRESETS[preset])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--work", type=Path, default=None, help="default: /tmp/landslide-<preset>")
    parser.add_argument("--architectures", default="linknet")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    parser.add_argument("--draws", type=int, default=None, help="default: the profile's (augmented variants per tile per epoch)")
    parser.add_argument("--width", type=float, default=None, help="default: the profile's")
    parser.add_argument("--loss", default=None, help="default: the profile's; a name in training.losses.LOSSES")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"{SHARED} is absent: nothing to run", file=sys.stderr)
        return 2
    work = (args.work or Path(f"/tmp/landslide-{args.preset}")).resolve()
    os.environ["DAGSTER_HOME"] = str(work / ".dagster")
    os.environ["LANDSLIDE_ARCHITECTURES"], os.environ["LANDSLIDE_FOLDS"] = args.architectures, str(args.folds)
    os.environ["LANDSLIDE_INPUT_SETS"] = "rgb"  # the tile data sets have no DEM: image-only variants

    from dagster import DagsterInstance, Definitions, define_asset_job

    from landslide_pipeline.defs import build_definitions
    from landslide_pipeline.defs.runner import run_chain
    from landslide_pipeline.demo import ensure_dagster_home
    from landslide_pipeline.layout import MAP_FACTS, REPORT_SUMMARY, DataLayout
    from landslide_pipeline.settings import PipelineSettings, StorageSettings
    from landslide_pipeline.training.evaluate import (
        ENSEMBLE,
        fold_rows,
        pick_champion,
        read_evaluation_table,
        summarise_by_architecture,
    )

    ensure_dagster_home(work)
    settings = PipelineSettings.from_env()
    layout = DataLayout(work / "data")
    surveys = write_surveys(layout.raw, args.preset)
    (work / "mlruns").mkdir(parents=True, exist_ok=True)
    defs = build_definitions(settings, StorageSettings(str(layout.root), f"sqlite:///{work}/mlruns/mlflow.db",
                                                       str(work / "mlruns" / "artifacts")))
    overrides = {k: v for k, v in {"epochs": args.epochs, "width": args.width, "loss": args.loss,
                                   "draws": args.draws}.items() if v is not None}
    config = {
        "training_set": {"use_terrain": False, **TRAINING_SET[args.preset]},
        "trained_model": {"profile": args.profile, **overrides},
        "band_comparison": {"profile": args.profile, "band_sets": L4S_BAND_SETS, **overrides},
    }
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def on_step(name: str, seconds: float) -> None:
        steps[name] = round(seconds, 1)
        print(f"[{args.preset}] {name}: {seconds:.1f} s", flush=True)

    run_chain(defs, settings, DagsterInstance.get(), surveys, config, on_step,
              train={variant: {} for variant in settings.model_variants})
    if args.preset == "l4s_h5":  # the input-band experiment, as a multi-band smoke test
        band_job = define_asset_job("band_comparison_only", ["band_comparison"])
        experiments = Definitions.merge(defs, Definitions(jobs=[band_job])).resolve_job_def("band_comparison_only")
        started_bands = time.perf_counter()
        assert experiments.execute_in_process(instance=DagsterInstance.get(), run_config={
            "ops": {"band_comparison": {"config": config["band_comparison"]}}}).success
        on_step("band comparison", time.perf_counter() - started_bands)
        print((layout.report("band_comparison") / REPORT_SUMMARY).read_text())
    table = read_evaluation_table(layout)
    shown = table.drop(columns=["mlflow_run_id", "label_source", "reference", "inputs"])
    print("\nEach fold model on its validation fold and on the held-out test split, each fold ensemble on the test split:")
    print(shown.to_string(index=False, float_format="%.3f"))
    summary = summarise_by_architecture(table)
    print("\nMean and standard deviation over folds:")
    print(summary.to_string(index=False, float_format="%.3f"))
    per_arch = {
        arch: {"precision": round(float(g["precision"].mean()), 4), "recall": round(float(g["recall"].mean()), 4),
               "f1": round(float(g["f1"].mean()), 4), "f1_std": round(float(g["f1"].std()), 4),
               "f1_best_fold": round(float(g["f1"].max()), 4), "parameters": int(g["parameters"].iloc[0]),
               "train_seconds_per_fold": round(float(g["train_seconds"].mean()), 1),
               **({"peer_f1": PEER_F1.get(arch.partition("@")[0])} if args.preset == "l4s_rgb" else {})}
        for arch, g in fold_rows(table)[fold_rows(table)["split"] == "test"].groupby("architecture")
    }
    champion = pick_champion(table)
    champion_test = table[(table["architecture"] == champion["architecture"]) & (table["kind"] == champion["kind"])
                          & (table["fold"] == champion["fold"]) & (table["split"] == "test")].iloc[0]
    folds = fold_rows(table)
    champion_folds = folds[(folds["architecture"] == champion["architecture"]) & (folds["split"] == "validation")]
    ensembles = {r.architecture: round(float(r.f1), 4) for r in table[table["kind"] == ENSEMBLE].itertuples()}
    train_minutes = sum(seconds for name, seconds in steps.items() if name.startswith("train ")) / 60
    print(f"\nChampion: {champion['architecture']} {champion['kind']}, test F1 {champion_test['f1']:.4f} at threshold "
          f"{champion_test['threshold']:.3f} (arg-max {champion_test['f1_argmax']:.4f}); cross-validated F1 "
          f"{champion_folds['f1'].mean():.4f}; fold ensembles on the test split: {ensembles}; "
          f"training {train_minutes:.1f} min for all folds.")
    if args.preset == "l4s_rgb":
        print(f"\nLandslide4Sense U-Net baseline F1 {L4S_BASELINE_F1} (14 bands, official split); "
              f"peer library (RGB, this split): {PEER_F1}.")
    maps = {s: json.loads((layout.map(s) / MAP_FACTS).read_text()) for s in surveys
            if (layout.map(s) / MAP_FACTS).is_file()}
    for survey_id, facts in maps.items():
        print(f"map of {survey_id}: {facts['n_landslides']} landslides, {facts['landslide_area_m2']:.0f} m2, "
              f"{facts['landslide_fraction']:.1%} of the valid pixels, model v{facts['version']}, "
              f"{facts['megapixels_per_second']:.2f} MP/s -> {layout.map(survey_id)}")
    map_facts = {s: {k: f[k] for k in ("n_landslides", "landslide_area_m2", "landslide_fraction")}
                 for s, f in maps.items()}
    print(f"Total {time.perf_counter() - started:.0f} s.")
    print(json.dumps({"bench": args.preset, "profile": args.profile, "epochs": args.epochs, "width": args.width,
                      "loss": args.loss, "draws": args.draws, "folds": args.folds, "test": per_arch,
                      "ensembles": ensembles, "maps": map_facts, "steps_s": steps,
                      "champion": {"kind": champion["kind"], **{
                          k: round(float(champion_test[k]), 4) for k in ("f1", "precision", "recall", "threshold")}},
                      "champion_architecture": champion["architecture"],
                      "cv_f1_mean": round(float(champion_folds["f1"].mean()), 4),
                      "train_minutes_total": round(train_minutes, 2),
                      "total_s": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
