"""Peak memory of training on a Landslide4Sense-sized 14-band training set, for 1 and more draws.

Usage: ``python bench/train_memory.py [--tiles 3799] [--bands 14] [--draws 1,3] [--epochs 1]``

Generates, once, a training set of the shape of the Landslide4Sense train split (3,799 tiles of
128 x 128 px with 14 float bands: 3.5 GB of float32 on disk) under ``/tmp/landslide-bench/``,
written tile by tile as ``build_training_set`` writes one, with 5 folds. Then, for each number of
draws (fresh augmented variants of each tile per epoch), a fresh child process opens it, fits
fold 0's normalisation and trains a LinkNet (the ``cpu`` profile's width) for ``--epochs`` epochs
with the profile's augmentation, through ``training.fold_models.train_fold_model``: the pipeline's
own path. Each child reports its peak RSS (``resource.getrusage``), wall time and images/s.

With the old data path (every augmented copy stored, the whole set loaded, then fancy-indexed
into a second copy per fold) this set would have needed ~15 GB + ~12 GB for x5. The tiles are now
read a batch at a time, so the peak must neither approach the set's size nor grow with the draws.
The last line is JSON: {"tiles", "bands", "set_gb", "runs": [{"draws", "peak_rss_mb", ...}],
"max_peak_rss_mb", "grows_with_draws"}.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCH_DIR = Path(tempfile.gettempdir()) / "landslide-bench"
#: Peak RSS with the most draws over that with the fewest, above which memory grows with the draws.
GROWTH_RATIO = 1.1


def set_dir(tiles: int, bands: int) -> Path:
    return BENCH_DIR / f"training_set_{tiles}x{bands}"


def generate(directory: Path, tiles: int, bands: int) -> None:
    """A training set of random tiles with square 'landslides' that brighten the first bands."""
    import numpy as np
    import pandas as pd

    from landslide_pipeline.layout import TRAINING_DESCRIPTION, TRAINING_FOLDS, TRAINING_IMAGES, TRAINING_MASKS
    from landslide_pipeline.training.dataset import TileArrayWriter

    partial = directory.with_suffix(".partial")
    partial.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with TileArrayWriter(partial / TRAINING_IMAGES, (tiles, bands, 128, 128), np.float32) as images, \
            TileArrayWriter(partial / TRAINING_MASKS, (tiles, 128, 128), np.uint8) as masks:
        for _ in range(tiles):
            x = rng.normal(0.1, 0.05, (bands, 128, 128)).astype(np.float32)
            y = np.zeros((128, 128), np.uint8)
            r, c = rng.integers(0, 100, 2)
            y[r:r + 20, c:c + 20] = 1
            x[:3, r:r + 20, c:c + 20] += 0.1
            images.write(x)
            masks.write(y)
    folds = pd.DataFrame({"survey_id": "l4s_like", "tile_id": [f"t{i}" for i in range(tiles)],
                          "fold": np.arange(tiles) % 5, "group": [f"t{i}" for i in range(tiles)],
                          "landslide_fraction": 400 / 128 ** 2})
    folds.to_parquet(partial / TRAINING_FOLDS, index=False)
    (partial / TRAINING_DESCRIPTION).write_text(json.dumps({
        "bands": [f"band_{i + 1}" for i in range(bands)], "image_scaling": "float", "label_source": "manual",
        "set_id": "bench", "reference_source": None, "tiles": tiles, "tile_shape": [128, 128]}))
    partial.rename(directory)


def child(directory: Path, draws: int, epochs: int) -> dict:
    import torch

    from landslide_pipeline.training.dataset import TrainingSet
    from landslide_pipeline.training.fold_models import train_fold_model
    from landslide_pipeline.training.performance import retain_freed_memory
    from landslide_pipeline.training.profiles import resolve_profile

    retain_freed_memory()  # as the training asset does: the worst case for the peak
    samples = TrainingSet.load(directory)
    profile = resolve_profile("cpu", epochs=epochs, draws=draws, warmup_epochs=0)
    started = time.perf_counter()
    trained = train_fold_model(samples, "linknet", 0, profile, torch.device("cpu"))
    seconds = time.perf_counter() - started
    history = trained.result.history
    return {"draws": draws, "epochs": epochs, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "seconds": round(seconds, 1), "images_per_second": round(sum(h.images_per_second for h in history) / len(history), 1),
            "samples_per_epoch": draws * len(samples.split(0)[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=3799)
    parser.add_argument("--bands", type=int, default=14)
    parser.add_argument("--draws", default="1,3")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.tiles, args.bands)
        return
    if args.child:
        print(json.dumps(child(args.child, int(args.draws), args.epochs)))
        return
    directory = set_dir(args.tiles, args.bands)
    if not directory.is_dir():
        print(f"generating {directory} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--generate", str(directory), "--tiles", str(args.tiles),
                        "--bands", str(args.bands)], check=True)
    set_gb = sum(p.stat().st_size for p in directory.iterdir()) / 1e9
    runs = []
    for draws in (int(d) for d in args.draws.split(",")):
        result = subprocess.run([sys.executable, __file__, "--child", str(directory), "--draws", str(draws),
                                 "--epochs", str(args.epochs)], check=True, capture_output=True, text=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
        run = runs[-1]
        print(f"draws {draws}: {run['samples_per_epoch']} samples/epoch, peak RSS {run['peak_rss_mb']} MB, "
              f"{run['seconds']} s, {run['images_per_second']} images/s", flush=True)
    growth = runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]
    print(f"{args.tiles} tiles x {args.bands} bands ({set_gb:.2f} GB on disk): peak RSS x{growth:.2f} from "
          f"{runs[0]['draws']} to {runs[-1]['draws']} draws")
    print(json.dumps({"tiles": args.tiles, "bands": args.bands, "set_gb": round(set_gb, 2), "runs": runs,
                      "max_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                      "grows_with_draws": growth > GROWTH_RATIO}))


if __name__ == "__main__":
    main()
