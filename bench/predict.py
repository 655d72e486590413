"""Survey mapping throughput and peak memory on two generated scenes, the second of twice the area,
for a single model, a fold ensemble and a fold ensemble with test-time flips.

Usage: ``python bench/predict.py [--size 10000] [--window 512] [--overlap 64] [--batch-size N] [--threads N]
[--architecture linknet] [--width 0.25] [--members 5] [--kinds single,ensemble,ensemble+tta]``

Two scenes, ``size`` x ``size`` x 3 uint8 and ``round(size * sqrt(2))`` square (twice the pixels),
of uniform noise (the network's cost does not depend on the pixel values) are generated once
under ``/tmp/landslide-bench/``: 256 x 256 blocks, uncompressed, written block row by block row
(never whole in memory), each in a child process of its own. Each scene is then mapped by
``mapping.predict_scene`` in a fresh child process: the architecture and width of the ``cpu``
training profile (LinkNet, 0.25) with seeded random weights behind a per-band normalisation, as
one model (``single``), as ``--members`` of them averaged (``ensemble``, a fold ensemble's cost),
and that ensemble with flip TTA (``ensemble+tta``, 3x the forward passes), on the device
``training.loop.pick_device`` picks, writing the probability and mask COGs (removed afterwards).
The child reports its wall time (reading, network, blending, writing and COG conversion), windows
and peak RSS (``resource.getrusage``); throughput is the scene's megapixels over that wall time.
The parent imports nothing heavy, so no child inherits a large peak from it. Every kind maps the
smaller scene; ``single`` also maps the larger one: if the mapping's memory is bounded, the two
peaks are nearly equal. The last line is JSON, with ``mp_per_s`` per kind.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Lets the script run from a checkout where the package is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCH_DIR = Path(tempfile.gettempdir()) / "landslide-bench"
BLOCK = 256
#: Peak RSS of the larger scene over that of the smaller one below which memory counts as flat.
FLAT_RSS_RATIO = 1.15
KINDS = ("single", "ensemble", "ensemble+tta")


def scene_path(size: int) -> Path:
    return BENCH_DIR / f"noise_{size}px.tif"


def generate_scene(path: Path, size: int) -> None:
    """Writes a size x size x 3 uint8 noise GeoTIFF, one row of blocks at a time."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32650",
                   transform=from_origin(500_000.0, 4_400_000.0, 0.25, 0.25), tiled=True, blockxsize=BLOCK,
                   blockysize=BLOCK, BIGTIFF="IF_SAFER", interleave="pixel", photometric="RGB")
    rng = np.random.default_rng(size)
    partial = path.with_suffix(".partial.tif")
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(partial, "w", **profile) as dst:
        for row in range(0, size, BLOCK):
            height = min(BLOCK, size - row)
            dst.write(rng.integers(0, 256, (3, height, size), dtype=np.uint8), window=Window(0, row, size, height))
    partial.rename(path)


def ensure_scene(size: int) -> Path:
    """Generates the scene in a child process if it is not there yet."""
    path = scene_path(size)
    if not path.is_file():
        print(f"generating {path} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--generate", str(path), "--size", str(size)], check=True)
    return path


def child(path: Path, args: argparse.Namespace, kind: str) -> dict:
    """Maps the scene in this (child) process with a model of ``kind`` and reports time, windows
    and peak RSS."""
    import torch

    from landslide_pipeline.geo.scene import SceneFiles
    from landslide_pipeline.mapping import PredictionSpec, predict_scene
    from landslide_pipeline.mapping.predict import batch_size as batch_size_for
    from landslide_pipeline.nn import create_model
    from landslide_pipeline.nn.segmenter import BandNormalization, NormalizedNetwork, Segmenter
    from landslide_pipeline.training.loop import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    members = 1 if kind == "single" else args.members
    model = Segmenter([NormalizedNetwork(BandNormalization([0.2] * 3, [0.1] * 3),
                                         create_model(args.architecture, 3, 2, width=args.width))
                       for _ in range(members)], flips=kind == "ensemble+tta")
    window, overlap, batch_size = args.window, args.overlap, args.batch_size
    device = pick_device()
    out = Path(tempfile.mkdtemp(prefix=f"predict_{path.stem}-", dir=BENCH_DIR))
    try:
        spec = PredictionSpec(window=window, overlap=overlap, batch_size=batch_size)
        start = time.perf_counter()
        report = predict_scene(SceneFiles((path,)), model, ["red", "green", "blue"], out / "probability.tif", out / "mask.tif",
                               spec=spec, device=device)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(out)
    return dict(kind=kind, scene=f"{report.width}x{report.height}x3 uint8", megapixels=round(report.pixels / 1e6, 2),
                seconds=round(seconds, 2), mp_per_s=round(report.pixels / 1e6 / seconds, 3),
                windows=report.windows, peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                device=str(device), torch_threads=torch.get_num_threads(), batch_size=batch_size_for(spec, device))


def measure(path: Path, args: argparse.Namespace, kind: str) -> dict:
    """Runs ``child`` in a fresh interpreter so its peak RSS is its own."""
    command = [sys.executable, __file__, "--child", str(path), "--kind", kind, "--window", str(args.window),
               "--overlap", str(args.overlap), "--architecture", args.architecture, "--width", str(args.width),
               "--members", str(args.members)]
    for option, value in (("--batch-size", args.batch_size), ("--threads", args.threads)):
        if value:
            command += [option, str(value)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="side of the smaller scene in pixels")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, help="windows per forward pass (default: the spec's choice)")
    parser.add_argument("--threads", type=int, help="torch threads in the measuring child (default: torch's)")
    parser.add_argument("--architecture", default="linknet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--members", type=int, default=5, help="models in the ensemble (the fold count)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate_scene(args.generate, args.size)
        return
    if args.child:
        print(json.dumps(child(args.child, args, args.kind)))
        return
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    small, large = ensure_scene(args.size), ensure_scene(round(args.size * math.sqrt(2)))
    runs = [measure(small, args, kind) for kind in kinds]
    memory = [runs[0], measure(large, args, kinds[0])]
    print(f"{'kind':<14} {'scene':<22} {'MP':>7} {'s':>8} {'MP/s':>7} {'peak RSS MB':>12} {'windows':>8}")
    for run in runs + memory[1:]:
        print(f"{run['kind']:<14} {run['scene']:<22} {run['megapixels']:>7} {run['seconds']:>8} {run['mp_per_s']:>7} "
              f"{run['peak_rss_mb']:>12} {run['windows']:>8}")
    area_ratio = memory[1]["megapixels"] / memory[0]["megapixels"]
    rss_ratio = memory[1]["peak_rss_mb"] / memory[0]["peak_rss_mb"]
    print(f"x{area_ratio:.2f} the pixels -> x{rss_ratio:.2f} the peak RSS "
          f"({'flat' if rss_ratio < FLAT_RSS_RATIO else 'NOT flat'}); {args.architecture} width {args.width}, "
          f"ensembles of {args.members}, on {runs[0]['device']}, {runs[0]['torch_threads']} torch thread(s), "
          f"window {args.window}, overlap {args.overlap}, batch {runs[0]['batch_size']}")
    print(json.dumps({"architecture": args.architecture, "width": args.width, "members": args.members,
                      "window": args.window, "overlap": args.overlap, "batch_size": runs[0]["batch_size"],
                      "device": runs[0]["device"], "torch_threads": runs[0]["torch_threads"],
                      "mp_per_s": {run["kind"]: run["mp_per_s"] for run in runs}, "runs": runs + memory[1:],
                      "area_ratio": round(area_ratio, 3), "rss_ratio": round(rss_ratio, 3),
                      "memory_flat": rss_ratio < FLAT_RSS_RATIO}))


if __name__ == "__main__":
    main()
