"""The ``landslide`` command.

``landslide train SURVEY [SURVEY ...]`` runs the whole chain (tiles, labels, training set, one
model per architecture x fold, fold ensembles, evaluation, champion, maps) on survey folders of
``data/raw`` in the current project, with the ``cpu`` profile unless told otherwise: the one
command that trains the best model on your own data.

``landslide evaluate MODEL (--dataset ADAPTER PATH | --survey SURVEY_ID)`` scores any saved model
on any labelled tiles: a pre-cut data set read through an adapter (``configs/datasets/<name>.toml``
or a path to one), or the labelled tiles of a prepared survey in the data folder. MODEL is a model
folder, ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<run id>`` or a run id
(``model_store``). It prints the metrics table (at the model's calibrated threshold and at the
arg-max) and, as its last line, JSON with the keys model, n_tiles, precision, recall, f1, iou,
kappa and threshold. Exit status 0 on success, 2 on bad input (with the reason on stderr).

``landslide predict IMAGE.tif [--dem DEM.tif] [--model MODEL] --out DIR`` maps a GeoTIFF with a
model (default ``models:/landslide-segmenter@champion``): the same code as the ``landslide_map``
asset, writing ``probability.tif`` and ``mask.tif`` (COGs), ``landslides.gpkg`` and ``map.json``
into DIR at once (nothing half-written on failure), with a progress bar.

``landslide info MODEL`` prints what a model takes and gives: architecture, members, input bands,
their normalisation, the tile multiple, the threshold, and where it came from (run, version, metrics).

``landslide survey add IMAGE.tif --id ID [--dem --labels --site --date --role]`` registers a survey
whose files stay where they are (``data/raw/<id>/survey.toml`` pointing at them, then ``READY``);
``landslide survey list`` shows every survey's state and outputs.

``landslide reregister`` logs every saved model of the data folder into the MLflow tracking store
as a new run and points its ``model.json`` at that run: the way back after the store was lost or
reset (a pipeline run then stops at its start with "tracking store reset or lost"). Materialize
``evaluation_table`` and ``champion_model`` again afterwards: the evaluation table names the old runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from landslide_pipeline.datasets.adapter import resolve_adapter
from landslide_pipeline.datasets.precut import read_labelled_pairs
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.layout import DataLayout, InvalidSurveyIdError, LabelSource
from landslide_pipeline.mapping.landslide_map import write_landslide_map
from landslide_pipeline.mapping.predict import PredictionSpec
from landslide_pipeline.mapping.vectorize import VectorizeSpec
from landslide_pipeline.metrics import segmentation_metrics
from landslide_pipeline.metrics.calibration import ARGMAX_THRESHOLD
from landslide_pipeline.model_store import (
    REGISTERED_MODEL,
    ModelNotFoundError,
    model_summary,
    read_spec,
    reregister_models,
    resolve_model,
    run_metrics,
)
from landslide_pipeline.progress import BarProgress
from landslide_pipeline.settings import StorageSettings, local_tracking_files
from landslide_pipeline.stack.services import StackError
from landslide_pipeline.storage import atomic_directory, remove_atomically
from landslide_pipeline.surveys.register import NewSurvey, add_survey, survey_states
from landslide_pipeline.training.checkpoint import ModelInputError, load_model
from landslide_pipeline.training.dataset import labelled_surveys, load_tile
from landslide_pipeline.training.evaluate import LabelledTile, score_tiles
from landslide_pipeline.training.features import TERRAIN_BANDS, input_scaling, tile_features
from landslide_pipeline.training.inputs import INPUT_SETS, ModelVariant, needs_dem
from landslide_pipeline.training.loop import pick_device

#: What ``landslide train`` trains unless told otherwise: the architecture the cpu profile was chosen for.
DEFAULT_TRAINED = "linknet"
#: The keys of the JSON line ``landslide evaluate`` ends with, in order.
EVALUATE_KEYS = ("model", "n_tiles", "precision", "recall", "f1", "iou", "kappa", "threshold")


def dataset_tiles(adapter_ref: str, root: Path) -> Iterator[LabelledTile]:
    """Labelled tiles of a pre-cut data set, read as the pipeline reads it."""
    # A path to an adapter file resolves against the working directory; errors name "--dataset".
    adapter = resolve_adapter(adapter_ref, Path.cwd() / "--dataset")
    for pair in read_labelled_pairs(root, adapter):
        yield LabelledTile(tile_features(pair.pixels, None, pair.invalid), pair.mask, input_scaling(pair.pixels.dtype))


def survey_tiles(data: Path, survey_id: str, model_bands: list[str]) -> Iterator[LabelledTile]:
    """Labelled (manual) tiles of a prepared survey, with the bands the model takes."""
    surveys = labelled_surveys(DataLayout(data), [survey_id], LabelSource.MANUAL)
    if not surveys:
        raise SurveyInputError(DataLayout(data).labels(LabelSource.MANUAL, survey_id),
                               "no labelled tiles: materialize prepare_survey for this survey first")
    wanted = [b for b in model_bands if b in TERRAIN_BANDS]
    for tile_id in surveys[0].tiles["tile_id"]:
        features, mask, scaling, terrain = load_tile(surveys[0], tile_id, bool(wanted))
        n_image = len(features) - len(terrain)
        missing = sorted(set(wanted) - set(terrain))
        if missing:
            raise SurveyInputError(surveys[0].tiles_dir, f"the model takes {', '.join(missing)}, which the survey's "
                                                         "terrain tiles lack (survey.toml terrain_bands)")
        yield LabelledTile(features[[*range(n_image), *(n_image + terrain.index(b) for b in wanted)]], mask, scaling)


def evaluate(args: argparse.Namespace) -> int:
    """`landslide evaluate`: scores the model on the labelled tiles and prints the table and the JSON line."""
    device = pick_device()
    with tempfile.TemporaryDirectory() as download:
        resolved = resolve_model(args.model, Path(download), args.tracking_uri)
        model, spec = load_model(resolved.folder, device)
    if args.flips is not None:
        model.flips, spec = args.flips, replace(spec, flips=args.flips)
    threshold = spec.threshold if args.threshold is None else args.threshold
    if args.dataset:
        adapter, root = args.dataset
        tiles, what = dataset_tiles(adapter, Path(root)), f"data set {root}"
    else:
        tiles, what = survey_tiles(Path(args.data), args.survey, spec.bands), f"survey {args.survey}"
    progress = tqdm(tiles, desc="scoring", unit="tile", file=sys.stderr, disable=args.quiet)
    histogram, n_tiles = score_tiles(model, spec, progress, what, args.batch_size, device)
    if n_tiles == 0:
        raise SurveyInputError(Path(args.dataset[1] if args.dataset else args.data), "no labelled tile to score")
    rows = {f"calibrated (p > {threshold:g})": segmentation_metrics(histogram.counts_at(threshold)),
            f"arg-max (p > {ARGMAX_THRESHOLD:g})": segmentation_metrics(histogram.counts_at(ARGMAX_THRESHOLD))}
    table = pd.DataFrame(rows).T[["precision", "recall", "f1", "iou", "kappa", "accuracy"]]
    print(f"{resolved.reference}: {spec.kind} {spec.architecture} ({len(spec.members)} member(s)), "
          f"bands {', '.join(spec.bands)}, on {n_tiles} tiles of {what}")
    print(table.to_string(float_format="%.4f"))
    scores = rows[next(iter(rows))]
    print(json.dumps({"model": resolved.reference, "n_tiles": n_tiles,
                      **{k: round(scores[k], 6) for k in ("precision", "recall", "f1", "iou", "kappa")},
                      "threshold": threshold}))
    return 0


def _listed(parse: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """An argparse type: a comma-separated list, each item parsed by ``parse`` (whose ValueError
    becomes a usage error naming the item)."""
    def parse_all(text: str) -> list[Any]:
        try:
            return [parse(item.strip()) for item in text.split(",") if item.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err
    return parse_all


def train(args: argparse.Namespace) -> int:
    """`landslide train`: runs the whole chain on the named surveys of data/raw."""
    root = Path.cwd()
    layout = DataLayout(root / StorageSettings.from_env().data_dir)
    missing = [s for s in args.surveys if not layout.raw_survey(s).is_dir()]
    if missing:
        raise FileNotFoundError(f"no survey folder {', '.join(str(layout.raw_survey(s)) for s in missing)}: "
                                "put each survey in data/raw/<survey id>/ (README, Surveys)")
    variants = args.architectures or [ModelVariant(DEFAULT_TRAINED)]
    if args.architectures:
        os.environ["LANDSLIDE_ARCHITECTURES"] = ",".join(dict.fromkeys(v.architecture for v in variants))
        os.environ["LANDSLIDE_INPUT_SETS"] = ",".join(dict.fromkeys(v.inputs for v in variants))
    if args.folds:
        os.environ["LANDSLIDE_FOLDS"] = str(args.folds)
    from landslide_pipeline.demo import run_project  # imports Dagster: only for this command

    overrides = {k: v for k, v in {"epochs": args.epochs}.items() if v is not None}
    config: dict[str, dict] = {"trained_model": {"profile": args.profile, **overrides}}
    if not any(needs_dem(INPUT_SETS[v.inputs]) for v in variants):
        config["training_set"] = {"use_terrain": False}  # image-only models: surveys need no DEM
    plan: dict[str, dict] = {v.key: {} for v in variants}
    others = [source for source in args.label_sources if source != LabelSource.MANUAL]
    if others:
        run_project(root, list(args.surveys), config, train=plan, source_plans={s: plan for s in others})
    else:
        run_project(root, list(args.surveys), config, train=plan)
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `landslide` command and its subcommands."""
    root = argparse.ArgumentParser(prog="landslide", description="Landslide mapping pipeline tools.")
    commands = root.add_subparsers(dest="command", required=True)
    command = commands.add_parser("train", help="run the whole chain on surveys of data/raw",
                                  description=__doc__.split("\n\n")[1])
    command.add_argument("surveys", nargs="+", metavar="SURVEY", help="survey ids (folders of data/raw)")
    command.add_argument("--profile", default="cpu", choices=["cpu", "paper-a", "paper-b"])
    command.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    command.add_argument("--folds", type=int, default=None, help="default: $LANDSLIDE_FOLDS, else 5")
    command.add_argument("--architectures", default=None, type=_listed(ModelVariant.parse), help="comma-separated architectures to train, each with "
                                                                "an input set after @ if not image + slope (e.g. "
                                                                "linknet,linknet@rgb; default: "
                                                                f"{DEFAULT_TRAINED}, the cpu profile's choice; the "
                                                                "others stay partitions to train in the UI); "
                                                                "they become the model partitions; image-only "
                                                                "models alone need no DEM")
    command.add_argument("--label-sources", default=[LabelSource.MANUAL], type=_listed(LabelSource.check),
                         help="comma-separated label sources to train each architecture on: manual (default), obia, "
                              "union; more than one also writes the label-source comparison (study A, Table 6)")
    command.set_defaults(run=train)
    command = commands.add_parser("evaluate", help="score a model on labelled tiles",
                                  description=__doc__.split("\n\n")[2])
    command.add_argument("model", help="a model folder, models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID or a run id")
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", nargs=2, metavar=("ADAPTER", "PATH"),
                        help="a pre-cut data set: an adapter name (e.g. l4s_rgb) or .toml file, and its folder")
    source.add_argument("--survey", metavar="SURVEY_ID", help="the labelled tiles of a prepared survey")
    storage = StorageSettings.from_env()
    command.add_argument("--data", default=storage.data_dir,
                         help=f"the pipeline's data folder, for --survey (default: $LANDSLIDE_DATA, else "
                              f"{StorageSettings.data_dir})")
    command.add_argument("--tracking-uri", default=storage.tracking_uri,
                         help=f"MLflow store (default: $MLFLOW_TRACKING_URI, else {StorageSettings.tracking_uri})")
    command.add_argument("--threshold", type=float, default=None,
                         help="decision threshold (default: the model's calibrated one)")
    command.add_argument("--flips", action=argparse.BooleanOptionalAction, default=None,
                         help="test-time flips on or off: also average the two mirror images (3x the cost); "
                              "default: as the model was saved")
    command.add_argument("--batch-size", type=int, default=8)
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=evaluate)
    command = commands.add_parser("reregister", help="log the models on disk into a fresh tracking store",
                                  description=__doc__.split("\n\n")[6])
    storage = StorageSettings.from_env()
    command.add_argument("--data", default=storage.data_dir, help="the pipeline's data folder (default: $LANDSLIDE_DATA, "
                                                                  f"else {StorageSettings.data_dir})")
    command.add_argument("--tracking-uri", default=storage.tracking_uri,
                         help=f"MLflow store (default: $MLFLOW_TRACKING_URI, else {StorageSettings.tracking_uri})")
    command.set_defaults(run=reregister)
    command = commands.add_parser("clean", help="remove every generated output (make clean-data)",
                                  description="Removes every generated output under the data folder (all but raw/), "
                                              "the demo's generated surveys, a local MLflow store and the project's "
                                              "Dagster instance (.dagster). Surveys of your own in raw/ stay.")
    command.add_argument("--data", default=storage.data_dir, help="the pipeline's data folder")
    command.set_defaults(run=clean)
    command = commands.add_parser("stack", help="start, stop or inspect the team stack on this machine",
                                  description="The team stack on one machine (docs/deploy.md): a private PostgreSQL "
                                              "cluster, an MLflow tracking server, Redis, Dagster's code server, UI "
                                              "and daemon, and Celery workers, in $LANDSLIDE_STACK_DIR (.stack). "
                                              "`start` returns once every service answers; `set -a; . "
                                              ".stack/stack.env` points a shell at it.")
    command.add_argument("action", choices=["start", "stop", "status"])
    command.add_argument("--data", default=storage.data_dir, help="the data folder every worker shares")
    command.set_defaults(run=stack)
    _add_product_commands(commands, storage)
    return root


def _add_product_commands(commands: Any, storage: StorageSettings) -> None:
    """``predict``, ``info`` and ``survey``: what a user with a model and an image needs."""
    command = commands.add_parser("predict", help="map a GeoTIFF with a model", description=__doc__.split("\n\n")[3])
    command.add_argument("image", type=Path, help="the orthomosaic GeoTIFF")
    command.add_argument("--dem", type=Path, default=None, help="its DEM (any CRS and resolution covering it)")
    command.add_argument("--model", default=f"models:/{REGISTERED_MODEL}@champion",
                         help="a model folder, models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID or a run id")
    command.add_argument("--out", type=Path, required=True, help="the map's folder (replaced as a whole)")
    command.add_argument("--window", type=int, default=PredictionSpec.window, help="window side in pixels (x32)")
    command.add_argument("--overlap", type=int, default=PredictionSpec.overlap, help="pixels shared by windows")
    command.add_argument("--threshold", type=float, default=None, help="default: the model's calibrated one")
    command.add_argument("--min-area-m2", type=float, default=VectorizeSpec.min_area_m2)
    command.add_argument("--simplify-m", type=float, default=VectorizeSpec.simplify_m)
    command.add_argument("--tracking-uri", default=storage.tracking_uri, help="MLflow store for models:/ and runs:/")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=predict)
    command = commands.add_parser("info", help="what a model takes, gives and came from",
                                  description=__doc__.split("\n\n")[4])
    command.add_argument("model", help="a model folder, models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID or a run id")
    command.add_argument("--tracking-uri", default=storage.tracking_uri)
    command.set_defaults(run=info)
    command = commands.add_parser("survey", help="add a survey that stays where it is, or list the surveys",
                                  description=__doc__.split("\n\n")[5])
    actions = command.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a GeoTIFF (with DEM and labels) as a survey of data/raw")
    add.add_argument("image", type=Path)
    add.add_argument("--id", required=True, dest="survey_id", help="the survey id: its folder under data/raw")
    add.add_argument("--dem", type=Path, default=None)
    add.add_argument("--labels", type=Path, default=None, help="landslide polygons (gpkg, geojson, shp, Labelme json)")
    add.add_argument("--site", default=None)
    add.add_argument("--date", default=None, help="flight date, YYYY-MM-DD")
    add.add_argument("--role", default="train", choices=["train", "test", "map"])
    add.add_argument("--data", default=storage.data_dir)
    add.set_defaults(run=survey_add)
    listing = actions.add_parser("list", help="every survey's state and outputs")
    listing.add_argument("--data", default=storage.data_dir)
    listing.set_defaults(run=survey_list)


def predict(args: argparse.Namespace) -> int:
    """`landslide predict`: the landslide_map asset's code on any GeoTIFF, into --out at once."""
    spec = PredictionSpec(window=args.window, overlap=args.overlap, threshold=args.threshold)
    vectorize = VectorizeSpec(min_area_m2=args.min_area_m2, simplify_m=args.simplify_m)
    scene = SceneFiles(images=(args.image.resolve(),), dem=args.dem.resolve() if args.dem else None)
    with tempfile.TemporaryDirectory() as download:
        resolved = resolve_model(args.model, Path(download), args.tracking_uri)
        provenance = {"image": str(scene.images[0]), "dem": str(scene.dem) if scene.dem else None,
                      "model": resolved.reference, "version": resolved.version, "mlflow_run_id": resolved.run_id}
        with atomic_directory(args.out.resolve()) as staging, \
                BarProgress("mapping", "strips", disable=args.quiet) as progress:
            result = write_landslide_map(scene, resolved.folder, staging, spec, vectorize, provenance,
                                         args.out.resolve(), progress)
    print(f"{args.out}: {len(result.polygons)} landslides, {result.landslide_area_m2:.0f} m2, "
          f"{result.report.landslide_fraction:.2%} of the valid pixels, {result.report.megapixels_per_second:.2f} MP/s")
    return 0


def info(args: argparse.Namespace) -> int:
    """`landslide info`: the model's contract and provenance."""
    with tempfile.TemporaryDirectory() as download:
        resolved = resolve_model(args.model, Path(download), args.tracking_uri)
        spec = read_spec(resolved.folder)
    for line in model_summary(spec, resolved.reference, resolved.version, run_metrics(spec.mlflow_run_id,
                                                                                      args.tracking_uri)):
        print(line)
    return 0


def survey_add(args: argparse.Namespace) -> int:
    """`landslide survey add`: data/raw/<id>/survey.toml pointing at the files, then READY."""
    new = NewSurvey(args.image, args.dem, args.labels, args.site, args.date, args.role)
    folder = add_survey(DataLayout(Path(args.data).resolve()), args.survey_id, new)
    print(f"added {args.survey_id}: {folder} (reads {args.image.resolve()} in place); marked READY")
    return 0


def survey_list(args: argparse.Namespace) -> int:
    """`landslide survey list`: one line per survey folder."""
    states = survey_states(DataLayout(Path(args.data).resolve()))
    print(states.to_string(index=False) if len(states) else f"no survey under {Path(args.data) / 'raw'}")
    return 0


def stack(args: argparse.Namespace) -> int:
    """`landslide stack start|stop|status`."""
    from landslide_pipeline.stack.stack import Stack, StackConfig

    team = Stack(StackConfig.from_env(args.data))
    if args.action == "start":
        pids = team.start()
        config = team.config
        print(f"started {', '.join(pids)} in {config.root}\n  Dagster UI {config.webserver_url}\n"
              f"  MLflow {config.tracking_uri}\n  client environment: set -a; . {config.env_file}")
    elif args.action == "stop":
        stopped = team.stop()
        print(f"stopped {', '.join(stopped)}" if stopped else f"no stack runs from {team.config.root}")
    else:
        status = team.status()
        for name, running in status.items():
            print(f"{name:12} {'running' if running else 'STOPPED'}")
        if not status:
            print(f"no stack runs from {team.config.root}")
        return 0 if status and all(status.values()) else 1
    return 0


def clean(args: argparse.Namespace) -> int:
    """`landslide clean`: removes what the pipeline and the demo generated, each folder at once."""
    from landslide_pipeline.demo import DEMO_SURVEYS  # the surveys the demo generates

    storage, layout = StorageSettings.from_env(), DataLayout(Path(args.data).resolve())
    generated = layout.generated() + [layout.raw_survey(s) for s in DEMO_SURVEYS if layout.raw_survey(s).exists()]
    generated += [p for p in local_tracking_files(storage) if p.exists()]
    generated += [p for p in [Path(".dagster")] if p.exists()]
    for path in generated:
        remove_atomically(path)
        print(f"removed {path}")
    print(f"{len(generated)} generated output(s) removed; {layout.raw} keeps your own surveys")
    return 0


def reregister(args: argparse.Namespace) -> int:
    """`landslide reregister`: a new run for every saved model, and model.json pointed at it."""
    from landslide_pipeline.defs.resources import MlflowTracking  # imports Dagster: only for this command

    layout = DataLayout(Path(args.data).resolve())
    if not layout.models.is_dir():
        raise FileNotFoundError(f"{layout.models}: no saved model to re-register")
    tracking = MlflowTracking(tracking_uri=args.tracking_uri, artifact_root=StorageSettings.from_env().artifact_root,
                              data_root=str(layout.root))
    runs = reregister_models(layout.models, tracking.experiment_id())
    for folder, run_id in runs.items():
        print(f"{folder.relative_to(layout.root)}: run {run_id}")
    print(f"re-registered {len(runs)} models into {args.tracking_uri}; materialize evaluation_table and "
          "champion_model again (they name the old runs)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `landslide` command; exit status 2 with the reason on bad input."""
    args = parser().parse_args(argv)
    if args.command == "evaluate" and args.threshold is not None and not 0 < args.threshold < 1:
        print("landslide evaluate: --threshold must be within (0, 1)", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (ModelNotFoundError, ModelInputError, SurveyInputError, FileNotFoundError, StackError,
            InvalidSurveyIdError, ValueError) as err:
        print(f"landslide {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
