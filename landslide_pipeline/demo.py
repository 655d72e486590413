"""The main job: ``python -m landslide_pipeline.demo`` (``make demo``).

Generates the embedded demo surveys (synthetic open-pit mines) into ``data/raw/`` unless they are
already there: ``demo_pit`` (image, DEM, hand-drawn labels) and ``demo_pit_rgb`` (another pit, the
image alone, to map only). Materializes every asset on the persistent Dagster instance in
``.dagster/`` (so the Dagster UI shows the runs): models from manual and from object-oriented
labels, image + slope and image-only inputs; prints the evaluation table, the label-source
comparison and the registered aliases; maps ``demo_pit`` with the champion and with the best
object-oriented-label model, and ``demo_pit_rgb`` (no DEM) with the image-only champion, each
scored against the survey's true landslides; and tells how to open the Dagster and MLflow UIs.
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
from dagster import AssetKey, DagsterInstance

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.mapping_assets import MAP_SURVEYS
from landslide_pipeline.defs.runner import run_chain, run_job
from landslide_pipeline.layout import GROUND_TRUTH, RAW_IMAGE, REPORT_SUMMARY, DataLayout
from landslide_pipeline.mapping.landslide_map import map_scores
from landslide_pipeline.settings import PipelineSettings, StorageSettings
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey
from landslide_pipeline.training.evaluate import read_evaluation_table, summarise_by_architecture

DEMO_SURVEY = "demo_pit"
#: A second pit with no DEM and no labels, mapped only (survey.toml role = "map").
RGB_SURVEY = "demo_pit_rgb"
DEMO_SURVEYS = {DEMO_SURVEY: SyntheticSurveySpec(),
                RGB_SURVEY: SyntheticSurveySpec(seed=1, with_dem=False, with_labels=False, role="map")}
#: Columns of the evaluation table the demo prints.
SHOWN = ["label_source", "architecture", "kind", "fold", "split", "n_tiles", "precision", "recall", "f1", "kappa",
         "threshold", "f1_argmax", "best_epoch"]
#: The instance config a new DAGSTER_HOME gets (relative to the project root): a run queue and one
#: slot for the CPU pool (``defs.concurrency``).
INSTANCE_CONFIG = Path("configs") / "dagster.yaml"
#: What the demo trains on manual labels: LinkNet with the cpu profile (the champion), and U-Net
#: narrower and shorter, on the image + slope (the architecture comparison) and on the image alone
#: (``unet@rgb``: it maps the survey without a DEM), so that they add rows without doubling the
#: demo's time. (LinkNet at width 0.125 has 8 channels in its first stage and did not learn in 12
#: epochs: U-Net is the narrow architecture.) Every architecture x input set is a partition in the
#: UI; the others can be trained there.
EXTRA = {"width": 0.125, "epochs": 12}
DEMO_TRAINING = {"linknet": {}, "unet": EXTRA, "unet@rgb": EXTRA}
#: On object-oriented labels: the same narrow U-Net, for the label-source comparison (against the
#: manual-label U-Net) and the object-oriented-label model that maps the demo survey.
DEMO_SOURCE_PLANS = {"obia": {"unet": EXTRA}}


def ensure_dagster_home(project_root: Path) -> Path:
    """Uses $DAGSTER_HOME, or ``.dagster`` in the project, creating it with the project's instance
    config (``configs/dagster.yaml``: telemetry off, a run queue, one slot for the CPU pool)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(project_root / ".dagster"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(project_root / INSTANCE_CONFIG, config)
    return home


def run_project(root: Path, survey_ids: list[str], config: dict, label_experiment: bool = False,
                experiments: bool = False, train: dict[str, dict] | None = None,
                source_plans: dict[str, dict[str, dict]] | None = None) -> pd.DataFrame:
    """Materializes the whole chain for ``survey_ids`` (folders of ``root/data/raw``) on the
    persistent instance and MLflow store of the project at ``root``, printing each step's time,
    then prints and returns the evaluation table. ``train``: the model partitions to train, each
    with its own ``trained_model`` overrides; ``source_plans``: the same for other label sources,
    which are then trained and compared (``runner.run_chain``)."""
    home = ensure_dagster_home(root)
    settings, storage = PipelineSettings.from_env(), StorageSettings.from_env()
    layout = DataLayout(root / storage.data_dir)
    started = time.perf_counter()
    defs = build_definitions(settings, storage)
    sources = ["manual", *(source_plans or {})] if source_plans else None
    run_chain(defs, settings, DagsterInstance.get(), survey_ids, config,
              on_step=lambda name, s: print(f"[landslide] {name}: {s:.1f} s", flush=True),
              label_experiment=label_experiment, experiments=experiments, train=train, label_sources=sources,
              source_plans=source_plans)
    table = read_evaluation_table(layout)
    print("\nEvaluation (landslide class at each model's calibrated threshold; each fold model on its validation fold "
          "and on the held-out test tiles, each fold ensemble on the test tiles):")
    print(table[SHOWN].to_string(index=False, float_format="%.3f"))
    print("\nMean over folds:")
    print(summarise_by_architecture(table).to_string(index=False, float_format="%.3f"))
    if label_experiment or source_plans:
        summary = pd.read_csv(layout.comparison / REPORT_SUMMARY)
        print("\nTraining labels (study A, Table 6): each source's models scored on the same tiles against the manual "
              "masks (mean over folds; *_change: relative to the manual-label model):")
        print(summary[["architecture", "split", "label_source", "precision", "recall", "f1", "kappa", "f1_change"]]
              .to_string(index=False, float_format="%.3f"))
    registered = DagsterInstance.get().get_latest_materialization_event(AssetKey("champion_model"))
    if registered is not None and registered.asset_materialization is not None:
        print("\nRegistered models (models:/landslide-segmenter@<alias>):")
        print(registered.asset_materialization.metadata["aliases"].value)
    print(f"\nLandslide maps: {layout.root / 'maps'}; reports: {layout.reports}; the champion: "
          f"models:/landslide-segmenter@champion (score it with `landslide evaluate`)")
    print(f"\nDone in {time.perf_counter() - started:.0f} s.\n"
          f"Dagster UI:  DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000"
          "   (or: make ui)  -> http://127.0.0.1:3000\n"
          "MLflow UI:   .venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db "
          "--default-artifact-root mlruns/artifacts -h 127.0.0.1 -p 5000   (or: make mlflow-ui)"
          " -> http://127.0.0.1:5000")
    return table


def compare_maps(root: Path, alternative: str = "champion-obia") -> pd.DataFrame:
    """Maps the demo survey with the ``alternative`` alias too (by default the best
    object-oriented-label model), then again with the champion (whose map stays on disk), and
    scores every demo map against its survey's true landslides."""
    storage = StorageSettings.from_env()
    layout = DataLayout(root / storage.data_dir)
    defs = build_definitions(PipelineSettings.from_env(), storage)
    truth = {s: layout.raw_survey(s) / GROUND_TRUTH for s in DEMO_SURVEYS}
    rows = [map_scores(layout.map(RGB_SURVEY), truth[RGB_SURVEY])]
    for alias in (alternative, "champion"):
        run_job(defs, DagsterInstance.get(), MAP_SURVEYS, {"landslide_map": {"model_alias": alias}}, DEMO_SURVEY)
        rows.insert(0, map_scores(layout.map(DEMO_SURVEY), truth[DEMO_SURVEY]))
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """Generates the demo surveys when absent and runs the whole chain on them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fold model (default: asset config)")
    parser.add_argument("--label-experiment", action="store_true",
                        help="also train on the union of manual and object-oriented labels")
    parser.add_argument("--experiments", action="store_true",
                        help="also run the input-band and training-set size experiments")
    args = parser.parse_args(argv)
    root = Path.cwd()
    layout = DataLayout(root / StorageSettings.from_env().data_dir)
    for survey_id, spec in DEMO_SURVEYS.items():
        if not (layout.raw_survey(survey_id) / RAW_IMAGE).is_file():
            print(f"generating the demo survey {survey_id} into {layout.raw_survey(survey_id)}", flush=True)
            generate_survey(layout.raw_survey(survey_id), spec)
    config = {"trained_model": {"epochs": args.epochs}} if args.epochs else {}
    plans = {**DEMO_SOURCE_PLANS, **({"union": {"unet": EXTRA}} if args.label_experiment else {})}
    run_project(root, list(DEMO_SURVEYS), config, False, args.experiments, DEMO_TRAINING, plans)
    maps = compare_maps(root)
    print("\nMaps scored against the surveys' true landslides (demo_pit_rgb has no DEM: mapped by the image-only "
          "model by default):")
    print(maps.to_string(index=False, float_format="%.3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
