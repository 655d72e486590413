"""Cutting a survey into GeoTIFF tiles that keep their own transforms, in bounded memory.

A scene is read in strips of one tile row (and, for very wide scenes, a group of tile columns
at a time), each strip extending the previous one by whole rows of the file's blocks, so every
source pixel is read and decoded once and memory is bounded by ``max_buffer_bytes`` whatever
the scene's size. Tiles are copied out of the strip and written on background threads while the
next strip is read. The last row and column of tiles are snapped inside the scene (they overlap
their neighbour a little) instead of being padded, so no tile holds an artificial border stripe.

Before a tile is written, the scene must be within its size cap (``SceneFiles.max_pixels``) and
the tiles must fit on the output disk (``estimate_tile_bytes``, with ``FREE_SPACE_MARGIN`` and
``FREE_SPACE_RESERVE_BYTES`` to spare).
"""

from __future__ import annotations

import math
import shutil
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec, column_chunks, plan_windows, tile_id, tile_offsets
from landslide_pipeline.geo.scene import SceneFiles, SceneReader
from landslide_pipeline.geo.terrain import BASE_TERRAIN, TerrainSpec
from landslide_pipeline.geo.tile_writer import BackgroundWrites, TileProfile, TileWriter
from landslide_pipeline.layout import TILE_IMAGES, TILE_TERRAIN
from landslide_pipeline.progress import Progress, no_progress

__all__ = ["TilingSpec", "estimate_tile_bytes", "plan_windows", "tile_id", "tile_offsets", "tile_scene"]

#: Memory for one strip of tile rows; wider scenes are read a group of tile columns at a time.
#: Up to 7 strips are alive at once (being read, cut, or waiting to be written).
MAX_BUFFER_BYTES = 64 * 2**20
#: Per tile file, beyond its pixels: the GeoTIFF header and the file system's block rounding.
TILE_FILE_OVERHEAD_BYTES = 4096
#: Tiling needs the estimate times this, plus ``FREE_SPACE_RESERVE_BYTES``, free on the output disk.
FREE_SPACE_MARGIN = 1.1
#: Left free for the masks, indexes and logs that follow the tiles, and for everything else on the disk.
FREE_SPACE_RESERVE_BYTES = 256 * 2**20


T = TypeVar("T")


def tile_scene(survey_id: str, scene: SceneFiles, out_dir: Path, spec: TilingSpec,
               terrain: TerrainSpec = BASE_TERRAIN, max_buffer_bytes: int = MAX_BUFFER_BYTES,
               max_scene_pixels: int | None = None, progress: Progress = no_progress) -> gpd.GeoDataFrame:
    """Writes image tiles (and terrain tiles when the scene has a DEM) and returns the tile index.

    Layout: ``out_dir/image/<tile_id>.tif`` keeps the selected image bands and their dtype;
    ``out_dir/terrain/<tile_id>.tif`` holds float32 elevation (m), slope (degrees) and the
    optional terrain bands resampled (bilinear) onto the tile's grid.

    Args:
        max_scene_pixels: Overrides the scene's size cap (``SceneFiles.max_pixels``).
        progress: Called with the tile positions cut so far and their total, after each row of tiles.

    Returns:
        One row per kept tile: survey_id, tile_id, row_off, col_off, height, width,
        nodata_fraction, geometry (tile footprint) in the image CRS.

    Raises:
        SurveyInputError: unreadable pixels, a scene smaller than a tile or above its size cap,
            tiles that would not fit on the output disk, or no tile left after the nodata filter.
    """
    if max_scene_pixels is not None:
        scene = replace(scene, max_pixels=max_scene_pixels)
    with SceneReader(scene) as reader:
        rows_offsets, col_offsets = _offsets(reader, spec)
        _check_free_space(reader, spec, terrain if reader.has_dem else None, out_dir)
        writers = _writers(reader, spec, terrain if reader.has_dem else None)
        (out_dir / TILE_IMAGES).mkdir(parents=True, exist_ok=True)
        if reader.has_dem:
            (out_dir / TILE_TERRAIN).mkdir(exist_ok=True)
        strips = _StripReader(reader, spec.tile_size)
        kept: list[tuple[int, int, float]] = []
        done, total = 0, len(rows_offsets) * len(col_offsets)
        with BackgroundWrites() as writes:
            for chunk in column_chunks(col_offsets, spec.tile_size, strips.max_width(max_buffer_bytes)):
                # closing(): on an error the reader thread stops before the image is closed.
                with closing(_prefetched(strips.tile_rows(rows_offsets, chunk))) as rows:
                    for row, strip, invalid in rows:
                        # The DEM is only read here, never on the strip reader's thread.
                        height, width = strip.shape[1:]
                        heights = (reader.terrain(row, chunk[0], height, width, terrain.bands, terrain.relief_radius_m)
                                   if reader.has_dem else None)
                        jobs, tiles = _tile_row(row, chunk, strip, invalid, heights, spec, writers, out_dir)
                        writes.submit(_run_all, jobs)
                        kept.extend(tiles)
                        done += len(chunk)
                        progress(done, total)
    if not kept:
        raise SurveyInputError(scene.name, f"no tile has at most {spec.max_nodata_fraction:.0%} nodata; "
                                           "the scene is empty")
    return _tile_index(survey_id, kept, spec.tile_size, reader.transform, reader.crs)


def _offsets(reader: SceneReader, spec: TilingSpec) -> tuple[list[int], list[int]]:
    try:
        return (tile_offsets(reader.height, spec.tile_size, spec.step),
                tile_offsets(reader.width, spec.tile_size, spec.step))
    except ValueError as err:
        raise SurveyInputError(reader.name, f"{reader.width}x{reader.height} px scene: {err}") from err


def estimate_tile_bytes(height: int, width: int, bands: int, itemsize: int, spec: TilingSpec,
                        terrain_bands: int = 0) -> int:
    """The most bytes tiling a scene writes: every tile kept, uncompressed.

    About pixels x (bands x itemsize + terrain_bands x 4) x (tile_size / stride)^2, counted tile
    by tile so that the snapped last row and column count, plus ``TILE_FILE_OVERHEAD_BYTES`` per
    file (one image tile, and one terrain tile when ``terrain_bands``).

    Raises:
        ValueError: a side smaller than the tile size.
    """
    size, step = spec.tile_size, spec.step
    n_tiles = len(tile_offsets(height, size, step)) * len(tile_offsets(width, size, step))
    pixel_bytes = bands * itemsize + terrain_bands * np.dtype(np.float32).itemsize
    files = 2 if terrain_bands else 1
    return n_tiles * (size * size * pixel_bytes + files * TILE_FILE_OVERHEAD_BYTES)


def _check_free_space(reader: SceneReader, spec: TilingSpec, terrain: TerrainSpec | None, out_dir: Path) -> None:
    estimate = estimate_tile_bytes(reader.height, reader.width, len(reader.bands), np.dtype(reader.dtype).itemsize,
                                   spec, len(terrain.bands) if terrain else 0)
    folder = next(p for p in (out_dir, *out_dir.parents) if p.exists())  # out_dir is made after this check
    free = shutil.disk_usage(folder).free
    if estimate * FREE_SPACE_MARGIN + FREE_SPACE_RESERVE_BYTES > free:
        raise SurveyInputError(out_dir, f"the tiles of {reader.name} need up to {_size(estimate)} (+ "
                                        f"{FREE_SPACE_MARGIN - 1:.0%} and {_size(FREE_SPACE_RESERVE_BYTES)} to spare) "
                                        f"but its disk has {_size(free)} free; free some space, write the tiles "
                                        "elsewhere, or use a larger stride")


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:,.1f} MiB"


def _writers(reader: SceneReader, spec: TilingSpec, terrain: TerrainSpec | None) -> dict[str, TileWriter]:
    size, sample = spec.tile_size, reader.transform
    writers = {TILE_IMAGES: TileWriter(TileProfile(size, size, len(reader.bands), reader.dtype, reader.crs,
                                                   reader.validity.nodata, reader.descriptions, spec.compress), sample)}
    if terrain is not None:
        writers[TILE_TERRAIN] = TileWriter(TileProfile(size, size, len(terrain.bands), "float32", reader.crs, math.nan,
                                                       terrain.bands, spec.compress), sample)
    return writers


class _StripReader:
    """Reads a scene one tile row at a time over a group of tile columns.

    Each read extends the rows still needed by whole rows of the file's blocks, so every source
    row is read, and every block decoded, once. Every read fills a new buffer, so tiles cut from
    an earlier one can still be waiting to be written.
    """

    def __init__(self, scene: SceneReader, tile_size: int) -> None:
        self.scene, self.tile_size = scene, tile_size
        self.block_rows = max(1, min(scene.image.block_shapes[0][0], 4 * tile_size))

    def max_width(self, max_bytes: int) -> int:
        """The widest column group whose buffer fits in ``max_bytes`` (one tile at least)."""
        itemsize = np.dtype(self.scene.dtype).itemsize
        row_bytes = len(self.scene.indexes) * itemsize * (self.tile_size + self.block_rows)
        return max(self.tile_size, max_bytes // row_bytes)

    def tile_rows(self, rows: list[int], cols: list[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """Yields (row, pixels, invalid) per tile row: the image bands over rows [row, row + tile_size)
        of the column group, and its nodata pixels (None when the scene marks none)."""
        scene, size = self.scene, self.tile_size
        col0, width = cols[0], cols[-1] + size - cols[0]
        buffer = np.empty((len(scene.indexes), 0, width), dtype=scene.dtype)
        start = end = 0  # scene rows [start, end) are buffer rows [0, end - start)
        for row in rows:
            if row + size > end:
                keep = max(0, end - row)
                new_end = min(scene.height, -(-(row + size) // self.block_rows) * self.block_rows)
                fresh = np.empty((len(scene.indexes), new_end - row, width), dtype=buffer.dtype)
                fresh[:, :keep] = buffer[:, row - start:row - start + keep]
                scene.read_raw(Window(col0, row + keep, width, new_end - row - keep), out=fresh[:, keep:])
                buffer, start, end = fresh, row, new_end
            strip = buffer[:, row - start:row - start + size]
            yield row, *scene.split(strip, Window(col0, row, width, size))


def _prefetched(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """Advances an iterator on a background thread, up to ``depth`` items ahead of its consumer.

    GDAL releases the GIL while it reads and decodes, so the next strip is read while the tiles
    of this one are cut. An error of the iterator is raised in the consumer.
    """
    end: Any = object()
    # One worker runs the next() calls in submission order, so the iterator is never shared.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strip-reader")
    try:
        pending = deque(pool.submit(next, items, end) for _ in range(depth))
        while (item := pending.popleft().result()) is not end:
            pending.append(pool.submit(next, items, end))
            yield item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _tile_row(row: int, cols: list[int], strip: np.ndarray, invalid: np.ndarray | None, terrain: np.ndarray | None,
              spec: TilingSpec, writers: dict[str, TileWriter],
              out_dir: Path) -> tuple[list[Callable[[], None]], list[tuple[int, int, float]]]:
    """Copies the kept tiles of one tile row out of the strip; returns their write jobs and index rows."""
    size, col0, n_bands = spec.tile_size, cols[0], writers[TILE_IMAGES].profile.count
    jobs, kept = [], []
    for col in cols:
        x = col - col0
        nodata_fraction = float(invalid[:, x:x + size].mean()) if invalid is not None else 0.0
        if nodata_fraction > spec.max_nodata_fraction:
            continue
        name = tile_id(row, col)
        # Plain strings: pathlib costs more per tile than writing a small tile to tmpfs.
        jobs.append(writers[TILE_IMAGES].prepare(f"{out_dir}/{TILE_IMAGES}/{name}.tif", strip[:n_bands, :, x:x + size], row, col))
        if terrain is not None:
            jobs.append(writers[TILE_TERRAIN].prepare(f"{out_dir}/{TILE_TERRAIN}/{name}.tif", terrain[:, :, x:x + size],
                                                   row, col))
        kept.append((row, col, nodata_fraction))
    return jobs, kept


def _run_all(jobs: list[Callable[[], None]]) -> None:
    for job in jobs:
        job()


def _tile_index(survey_id: str, kept: list[tuple[int, int, float]], size: int, transform: Affine,
                crs: rasterio.crs.CRS | None) -> gpd.GeoDataFrame:
    rows, cols, fractions = (np.array(v) for v in zip(*sorted(kept)))  # row by row, whatever the column groups
    corners_x, corners_y = [], []
    for dr, dc in ((0, 0), (0, size), (size, 0), (size, size)):
        x, y = transform @ (cols + dc, rows + dr)  # type: ignore[operator]  # affine maps arrays too; its stubs say floats
        corners_x.append(x)
        corners_y.append(y)
    xs, ys = np.stack(corners_x), np.stack(corners_y)
    geometry = shapely.box(xs.min(axis=0), ys.min(axis=0), xs.max(axis=0), ys.max(axis=0))
    return gpd.GeoDataFrame({
        "survey_id": survey_id, "tile_id": [tile_id(int(r), int(c)) for r, c in zip(rows, cols)],
        "row_off": rows.astype(np.int64), "col_off": cols.astype(np.int64), "height": size, "width": size,
        "nodata_fraction": fractions.astype(np.float64),
    }, geometry=geometry, crs=crs)
