"""Object-oriented labelling throughput, peak memory and accuracy on generated open-pit scenes.

Usage: ``python bench/obia.py [--size 1024] [--seed 0] [--seeds 0 1 2 ...] [--rules configs/obia_rules.toml]``

The scene (``SyntheticSurveySpec(size_px=size, seed=seed)``) is generated once under
``/tmp/landslide-bench/`` as GeoTIFFs. A fresh child process then runs what the ``obia_labels``
asset runs on it: segmentation, object features (texture, outlines, features) and classification,
reading the image and DEM window by window, and reports the wall and CPU time of each step and
its peak RSS (``resource.getrusage``); throughput is the scene's megapixels over the wall time of
the three steps. The labels are scored against the scene's ground truth.

``--seeds`` also scores the default-size scene of each seed in memory (F1, precision, recall,
kappa against the ground truth), which is how the default rules were validated. The last line is
JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

# Lets the script run from a checkout where the package is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landslide_pipeline.geo.scene import SceneFiles  # noqa: E402
from landslide_pipeline.labelling.obia import label_scene  # noqa: E402
from landslide_pipeline.labelling.rules import load_rules  # noqa: E402
from landslide_pipeline.labelling.scene import ArraySource, RasterSource, windows  # noqa: E402
from landslide_pipeline.layout import RAW_DEM, RAW_IMAGE  # noqa: E402
from landslide_pipeline.metrics import ConfusionCounts, confusion_counts, segmentation_metrics  # noqa: E402
from landslide_pipeline.synthetic import SyntheticSurveySpec, build_scene, generate_survey  # noqa: E402

BENCH_DIR = Path(tempfile.gettempdir()) / "landslide-bench"
DEFAULT_RULES = Path(__file__).resolve().parents[1] / "configs" / "obia_rules.toml"
TARGET_MP_PER_S = 1.0


def survey_dir(size: int, seed: int) -> Path:
    return BENCH_DIR / f"pit_{size}px_seed{seed}"


def ensure_survey(size: int, seed: int) -> Path:
    """Generates the survey in a child process of its own: a measuring child forked from a
    process that built a large scene would report that process's peak RSS as its own."""
    folder = survey_dir(size, seed)
    if not (folder / "ground_truth.tif").is_file():
        subprocess.run([sys.executable, __file__, "--generate", str(folder), "--size", str(size), "--seed", str(seed)],
                       check=True)
    return folder


def child(folder: Path, rules_path: Path) -> dict:
    """Labels the survey in this (child) process and reports times, memory and accuracy."""
    rules = load_rules(rules_path)
    cpu, wall = time.process_time(), time.perf_counter()
    with RasterSource(SceneFiles((folder / RAW_IMAGE,), folder / RAW_DEM)) as source, label_scene(source, rules) as labels:
        seconds = dict(labels.seconds)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        summary = labels.summary()
        megapixels = source.height * source.width / 1e6
        counts = ConfusionCounts()
        with rasterio.open(folder / "ground_truth.tif") as truth:
            for row, col, height, width in windows(source.height, source.width, rules.segmentation.window_px):
                counts += confusion_counts(labels.mask(row, col, height, width),
                                           truth.read(1, window=Window(col, row, width, height)))
    scores = segmentation_metrics(counts)
    steps = sum(seconds.values())
    return {
        "megapixels": megapixels, "wall_s": round(steps, 3), "cpu_s": round(cpu, 3),
        "wall_with_setup_s": round(wall, 3), "steps_s": {k: round(v, 3) for k, v in seconds.items()},
        "mp_per_s": round(megapixels / steps, 3), "mp_per_cpu_s": round(megapixels / cpu, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "superpixels": summary["superpixels"], "objects_per_scale": summary["objects_per_scale"],
        **{k: round(scores[k], 4) for k in ("f1", "precision", "recall", "kappa")},
    }


def score_seed(seed: int, rules_path: Path) -> dict:
    """F1, precision, recall and kappa of the default-size scene of one seed, in memory."""
    spec = SyntheticSurveySpec(seed=seed)
    scene = build_scene(spec)
    source = ArraySource(scene.image, scene.dem, rasterio.transform.from_origin(*spec.origin, spec.pixel_size_m,
                                                                                spec.pixel_size_m), spec.crs)
    with label_scene(source, load_rules(rules_path), outlines=False) as labels:
        mask = labels.mask(0, 0, source.height, source.width)
    scores = segmentation_metrics(confusion_counts(mask, scene.ground_truth))
    return {k: round(scores[k], 4) for k in ("f1", "precision", "recall", "kappa")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="scene side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the timed scene (0 = the demo survey)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help="seeds to score in memory")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        generate_survey(args.generate, SyntheticSurveySpec(size_px=args.size, seed=args.seed))
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.rules)))
        return 0
    folder = ensure_survey(args.size, args.seed)
    run = subprocess.run([sys.executable, __file__, "--child", str(folder), "--rules", str(args.rules)],
                         check=True, capture_output=True, text=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"scene {args.size} x {args.size} px (seed {args.seed}), rules {args.rules}")
    print(f"  segmentation + features + classification: {result['wall_s']:.2f} s wall "
          f"({', '.join(f'{k} {v:.2f} s' for k, v in result['steps_s'].items())}), {result['cpu_s']:.2f} s CPU")
    print(f"  throughput: {result['mp_per_s']:.2f} MP/s (target {TARGET_MP_PER_S}), "
          f"{result['mp_per_cpu_s']:.2f} MP per CPU second; peak RSS {result['peak_rss_mb']:.0f} MB")
    print(f"  F1 against the ground truth {result['f1']:.3f} (precision {result['precision']:.3f}, "
          f"recall {result['recall']:.3f}, kappa {result['kappa']:.3f})")
    seeds = {}
    for seed in args.seeds:
        seeds[seed] = score_seed(seed, args.rules)
        print(f"  seed {seed}: F1 {seeds[seed]['f1']:.3f}, precision {seeds[seed]['precision']:.3f}, "
              f"recall {seeds[seed]['recall']:.3f}, kappa {seeds[seed]['kappa']:.3f}", flush=True)
    if seeds:
        f1 = [s["f1"] for s in seeds.values()]
        print(f"  over {len(f1)} seeds: mean F1 {np.mean(f1):.3f}, min {np.min(f1):.3f}")
    print(json.dumps({"size_px": args.size, "seed": args.seed, **result, "target_mp_per_s": TARGET_MP_PER_S,
                      "meets_target": result["mp_per_s"] >= TARGET_MP_PER_S,
                      **({"seeds_f1": {str(k): v["f1"] for k, v in seeds.items()}} if seeds else {})}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
