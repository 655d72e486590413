"""The main job: ``python -m landslide_pipeline.demo`` (``make demo``).

Generates the embedded demo survey (a synthetic open-pit mine) into ``data/raw/demo_pit`` unless
it is already there, materializes every asset for it on the persistent Dagster instance in
``.dagster/`` (so the Dagster UI shows the runs), prints the evaluation table, and tells how to
open the Dagster and MLflow UIs on the same stores.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd
from dagster import DagsterInstance

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.runner import run_chain
from landslide_pipeline.layout import RAW_IMAGE, REPORT_SUMMARY, DataLayout
from landslide_pipeline.settings import PipelineSettings, StorageSettings
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey
from landslide_pipeline.training.evaluate import read_evaluation_table, summarise_by_architecture

DEMO_SURVEY = "demo_pit"
#: Columns of the evaluation table the demo prints.
SHOWN = ["architecture", "kind", "fold", "split", "n_tiles", "precision", "recall", "f1", "kappa", "threshold",
         "f1_argmax", "best_epoch"]
DAGSTER_YAML = "telemetry:\n  enabled: false\n"
#: What the demo trains: LinkNet with the cpu profile (the champion), and U-Net narrower and shorter
#: so the architecture comparison has two rows without doubling the demo's time. Every architecture
#: is a partition in the UI; the others can be trained there.
DEMO_TRAINING = {"linknet": {}, "unet": {"width": 0.125, "epochs": 12}}


def ensure_dagster_home(project_root: Path) -> Path:
    """Uses $DAGSTER_HOME, or ``.dagster`` in the project, creating it with telemetry off."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(project_root / ".dagster"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def run_project(root: Path, survey_ids: list[str], config: dict, label_experiment: bool = False,
                experiments: bool = False, train: dict[str, dict] | None = None) -> pd.DataFrame:
    """Materializes the whole chain for ``survey_ids`` (folders of ``root/data/raw``) on the
    persistent instance and MLflow store of the project at ``root``, printing each step's time,
    then prints and returns the evaluation table. ``train``: the architectures to train, each
    with its own ``trained_model`` overrides (``runner.run_chain``)."""
    home = ensure_dagster_home(root)
    settings, storage = PipelineSettings.from_env(), StorageSettings.from_env()
    layout = DataLayout(root / storage.data_dir)
    started = time.perf_counter()
    defs = build_definitions(settings, storage)
    run_chain(defs, settings, DagsterInstance.get(), survey_ids, config,
              on_step=lambda name, s: print(f"[landslide] {name}: {s:.1f} s", flush=True),
              label_experiment=label_experiment, experiments=experiments, train=train)
    table = read_evaluation_table(layout)
    print("\nEvaluation (landslide class at each model's calibrated threshold; each fold model on its validation fold "
          "and on the held-out test tiles, each fold ensemble on the test tiles):")
    print(table[SHOWN].to_string(index=False, float_format="%.3f"))
    print("\nMean over folds:")
    print(summarise_by_architecture(table).to_string(index=False, float_format="%.3f"))
    if label_experiment:
        summary = pd.read_csv(layout.comparison / REPORT_SUMMARY)
        print("\nManual vs object-oriented training labels, scored against the manual masks (mean over folds):")
        print(summary.to_string(index=False, float_format="%.3f"))
    print(f"\nLandslide maps: {layout.root / 'maps'}; reports: {layout.reports}; the champion: "
          f"models:/landslide-segmenter@champion (score it with `landslide evaluate`)")
    print(f"\nDone in {time.perf_counter() - started:.0f} s.\n"
          f"Dagster UI:  DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000"
          "   (or: make ui)  -> http://127.0.0.1:3000\n"
          "MLflow UI:   .venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db "
          "--default-artifact-root mlruns/artifacts -h 127.0.0.1 -p 5000   (or: make mlflow-ui)"
          " -> http://127.0.0.1:5000")
    return table


def main(argv: list[str] | None = None) -> int:
    """Generates the demo survey when absent and runs the whole chain on it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fold model (default: asset config)")
    parser.add_argument("--label-experiment", action="store_true",
                        help="also train on object-oriented labels and compare the label sources (study A, Table 6)")
    parser.add_argument("--experiments", action="store_true",
                        help="also run the input-band and training-set size experiments")
    args = parser.parse_args(argv)
    root = Path.cwd()
    layout = DataLayout(root / StorageSettings.from_env().data_dir)
    if not (layout.raw_survey(DEMO_SURVEY) / RAW_IMAGE).is_file():
        print(f"generating the demo survey into {layout.raw_survey(DEMO_SURVEY)}", flush=True)
        generate_survey(layout.raw_survey(DEMO_SURVEY), SyntheticSurveySpec())
    config = {"trained_model": {"epochs": args.epochs}} if args.epochs else {}
    run_project(root, [DEMO_SURVEY], config, args.label_experiment, args.experiments, DEMO_TRAINING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
