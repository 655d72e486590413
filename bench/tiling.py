"""Tiler throughput and peak memory on a large generated scene, against a plain windowed read.

Usage: ``python bench/tiling.py [--size 20000] [--tile-size 128] [--source-compress deflate] [--rounds 3]``

The scene (``size`` x ``size`` x 3 uint8, 256 x 256 blocks, deflate with a predictor as
orthomosaic software exports it; written block row by block row, never whole in memory) is
generated once under ``/tmp/landslide-bench/`` and reused. Each measurement runs in a fresh
child process that reports its wall time, its peak RSS (``resource.getrusage``) and the bytes
it read from files (``rchar`` of ``/proc/self/io``), in alternating rounds; medians count:

- reference: a plain sequential windowed read, ``src.read(window=w)`` over the file's blocks;
- tiler: the pipeline's own ``SceneSurvey.tile`` writing uncompressed GeoTIFF tiles into a RAM
  folder (``/dev/shm``), so that, like the reference read from the page cache, it touches
  memory only and the figure is the tiler's, not the disk's;
- tiler_disk: the same writing to a folder on disk (``/tmp``), for the end-to-end figure;
- disk_floor: no reading and no GeoTIFF at all, only as many raw files of a tile's bytes written
  to the same disk folder: what the file system alone costs for that many tiles, the ceiling of
  any tiler that writes one file per tile there.

Throughput is the scene's uncompressed size over the wall time. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

# Lets the script run from a checkout where the package is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCH_DIR = Path(tempfile.gettempdir()) / "landslide-bench"
TARGET_RATIO = 0.70
RSS_LIMIT_MB = 1024


def scene_path(size: int, compress: str) -> Path:
    return BENCH_DIR / f"scene_{size}px_{compress}.tif"


def generate_scene(path: Path, size: int, compress: str) -> None:
    """Writes a textured RGB scene block row by block row (memory: one row of blocks)."""
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32650",
                   transform=from_origin(500_000.0, 4_400_000.0, 0.1, 0.1), tiled=True, blockxsize=256,
                   blockysize=256, BIGTIFF="IF_SAFER", interleave="pixel")
    if compress != "none":
        profile.update(compress=compress, predictor=2)
    rng = np.random.default_rng(0)
    partial = path.with_suffix(".partial.tif")
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(partial, "w", **profile) as dst:
        for row in range(0, size, 256):
            height = min(256, size - row)
            rows, cols = np.mgrid[row:row + height, 0:size]
            base = ((rows // 7 + cols // 5) % 256).astype(np.uint8)
            noise = rng.integers(0, 24, size=(height, size), dtype=np.uint8)
            dst.write(np.stack([base + noise, base * 3 + noise, base ^ noise]), window=Window(0, row, size, height))
    partial.rename(path)


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def output_folder(mode: str) -> Path:
    """Where the tiler writes: RAM for "tiler" (when the machine has /dev/shm), disk for "tiler_disk"."""
    ram = Path("/dev/shm")
    return ram if mode == "tiler" and ram.is_dir() else BENCH_DIR


def child(mode: str, path: Path, tile_size: int, output_compress: str) -> dict:
    """Runs one measurement in this (child) process."""
    if mode == "disk_floor":
        tile_bytes = np.zeros(tile_size * tile_size * 3, dtype=np.uint8)
        with rasterio.open(path) as src:
            n_tiles = -(-src.width // tile_size) * -(-src.height // tile_size)
        work = Path(tempfile.mkdtemp(prefix="landslide-floor-", dir=BENCH_DIR))
        try:
            before, start = _rchar(), time.perf_counter()
            for i in range(n_tiles):
                tile_bytes.tofile(work / f"{i}.raw")
            seconds = time.perf_counter() - start
        finally:
            shutil.rmtree(work)
    elif mode == "reference":
        from landslide_pipeline.geo.scene import GDAL_CACHE_MB

        before, start = _rchar(), time.perf_counter()
        # The tiler's GDAL block cache; GDAL's default (5 % of RAM) makes this read slower and bigger.
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(path) as src:
            for _, window in src.block_windows(1):
                src.read(window=window)
        seconds = time.perf_counter() - start
        n_tiles = 0
    else:
        from landslide_pipeline.geo.tiling import TilingSpec
        from landslide_pipeline.surveys import open_survey

        work = Path(tempfile.mkdtemp(prefix="landslide-tiles-", dir=output_folder(mode)))
        try:
            survey = work / "survey"
            survey.mkdir()
            (survey / "survey.toml").write_text(f'source = "{path.parent}"\nimage = "{path.name}"\n')
            scene_survey = open_survey(survey)
            before, start = _rchar(), time.perf_counter()
            index = scene_survey.tile(work / "tiles", TilingSpec(tile_size, compress=output_compress))
            seconds = time.perf_counter() - start
            n_tiles = len(index)
        finally:
            shutil.rmtree(work)
    return dict(seconds=seconds, read_bytes=_rchar() - before, n_tiles=n_tiles,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure(mode: str, path: Path, tile_size: int, output_compress: str) -> dict:
    """Runs ``child`` in a fresh interpreter so its peak RSS is its own."""
    os.sync()  # start each run without dirty pages of the previous one still being flushed
    command = [sys.executable, __file__, "--child", mode, "--path", str(path), "--tile-size", str(tile_size),
               "--output-compress", output_compress]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    """Generates the scene if needed, measures both in alternating rounds, prints a table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--tile-size", type=int, default=128)
    parser.add_argument("--source-compress", choices=("none", "deflate", "lzw"), default="deflate")
    parser.add_argument("--output-compress", choices=("none", "deflate", "lzw", "zstd"), default="none")
    parser.add_argument("--rounds", type=int, default=3, help="alternating reference/tiler runs; medians count")
    parser.add_argument("--child", choices=("reference", "tiler", "tiler_disk", "disk_floor"))
    parser.add_argument("--path", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path, args.tile_size, args.output_compress)))
        return
    path = scene_path(args.size, args.source_compress)
    if not path.is_file():
        print(f"generating {path} ...", flush=True)
        generate_scene(path, args.size, args.source_compress)
    measure("reference", path, args.tile_size, args.output_compress)  # warms the page cache for both
    runs: dict[str, list[dict]] = {"reference": [], "tiler": [], "tiler_disk": [], "disk_floor": []}
    for _ in range(args.rounds):
        for mode in runs:
            runs[mode].append(measure(mode, path, args.tile_size, args.output_compress))
    figures = summarize(args, runs, args.size * args.size * 3, path.stat().st_size)
    print(f"{'':<10} {'MB/s':>8} {'peak RSS MB':>12}   (median of {args.rounds} alternating runs)")
    print(f"{'reference':<10} {figures['reference_mb_s']:>8} {figures['reference_peak_rss_mb']:>12}")
    print(f"{'tiler':<10} {figures['tiler_mb_s']:>8} {figures['tiler_peak_rss_mb']:>12}  "
          f"({figures['n_tiles']} tiles in {figures['tiler_seconds']} s, "
          f"{figures['tiler_file_reads_per_source_byte']} file bytes read per byte of the scene file)")
    print(f"{'tiler_disk':<10} {figures['tiler_disk_mb_s']:>8} {figures['tiler_disk_peak_rss_mb']:>12}  "
          f"(writing to {output_folder('tiler_disk')})")
    print(f"{'disk_floor':<10} {figures['disk_floor_mb_s']:>8} {'':>12}  "
          f"(only writing {figures['n_tiles']} raw tile-sized files there, nothing read)")
    print(f"tiler / reference = {figures['throughput_ratio']:.0%} (target {TARGET_RATIO:.0%}, "
          f"RSS < {RSS_LIMIT_MB} MB); on disk {figures['disk_throughput_ratio']:.0%}, "
          f"where writing the files alone allows at most {figures['disk_floor_ratio']:.0%}")
    print(json.dumps(figures))


def summarize(args: argparse.Namespace, runs: dict[str, list[dict]], scene_bytes: int, file_bytes: int) -> dict:
    """The bench's figures: median throughput of each mode, highest peak RSS."""
    seconds = {mode: statistics.median(r["seconds"] for r in results) for mode, results in runs.items()}
    figures = {
        "scene": f"{args.size}x{args.size}x3 uint8", "source_compress": args.source_compress,
        "tile_size": args.tile_size, "output_compress": args.output_compress, "rounds": args.rounds,
        "n_tiles": runs["tiler"][0]["n_tiles"],
        "reference_mb_s": round(scene_bytes / seconds["reference"] / 1e6, 1),
        "reference_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["reference"]), 1),
        "tiler_mb_s": round(scene_bytes / seconds["tiler"] / 1e6, 1),
        "tiler_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["tiler"]), 1),
        "tiler_seconds": round(seconds["tiler"], 2),
        "tiler_file_reads_per_source_byte": round(max(r["read_bytes"] for r in runs["tiler"]) / file_bytes, 3),
    }
    figures["tiler_disk_mb_s"] = round(scene_bytes / seconds["tiler_disk"] / 1e6, 1)
    figures["tiler_disk_peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in runs["tiler_disk"]), 1)
    figures["throughput_ratio"] = round(figures["tiler_mb_s"] / figures["reference_mb_s"], 3)
    figures["disk_throughput_ratio"] = round(figures["tiler_disk_mb_s"] / figures["reference_mb_s"], 3)
    figures["disk_floor_mb_s"] = round(scene_bytes / seconds["disk_floor"] / 1e6, 1)
    figures["disk_floor_ratio"] = round(figures["disk_floor_mb_s"] / figures["reference_mb_s"], 3)
    figures["target_met"] = bool(figures["throughput_ratio"] >= TARGET_RATIO
                                 and figures["tiler_peak_rss_mb"] < RSS_LIMIT_MB)
    return figures


if __name__ == "__main__":
    main()
