"""Cutting a survey into GeoTIFF tiles that keep their own transforms, in bounded memory.

A scene is read in strips of one tile row (and, for very wide scenes, a group of tile columns
at a time), each strip extending the previous one by whole rows of the file's blocks, so every
source pixel is read and decoded once and memory is bounded by ``max_buffer_bytes`` whatever
the scene's size. Tiles are copied out of the strip and written on background threads while the
next strip is read. The last row and column of tiles are snapped inside the scene (they overlap
their neighbour a little) instead of being padded, so no tile holds an artificial border stripe.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from landslide_pipeline.datasets.precut import tile_dataset
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec, column_chunks, plan_windows, tile_id, tile_offsets
from landslide_pipeline.geo.mosaic import open_scene
from landslide_pipeline.geo.rasters import alpha_band, check_dtype, invalid_pixels, open_raster, select_bands
from landslide_pipeline.geo.survey import SurveyFiles
from landslide_pipeline.geo.terrain import dem_on_grid, pixel_size_m, terrain_bands, terrain_margin
from landslide_pipeline.geo.tile_writer import BackgroundWrites, TileProfile, TileWriter
from landslide_pipeline.layout import TILE_IMAGES, TILE_TERRAIN

__all__ = ["TilingSpec", "plan_windows", "tile_id", "tile_offsets", "tile_scene", "tile_survey"]

#: Memory for one strip of tile rows; wider scenes are read a group of tile columns at a time.
#: Up to 7 strips are alive at once (being read, cut, or waiting to be written).
MAX_BUFFER_BYTES = 64 * 2**20
#: GDAL's block cache, in MB; strips are block-aligned, so it only serves VRT mosaics and DEMs.
GDAL_CACHE_MB = 128


T = TypeVar("T")


@dataclass(frozen=True)
class _Validity:
    """How a scene marks missing pixels: a nodata value, an alpha band, or a per-dataset mask."""

    nodata: float | None
    alpha: int | None
    dataset_mask: bool


def tile_survey(survey_id: str, files: SurveyFiles, out_dir: Path, spec: TilingSpec) -> gpd.GeoDataFrame:
    """Writes a survey's tiles into ``out_dir`` and returns its tile index.

    A scene is cut by ``tile_scene``; a pre-cut data set (kind "tiles") is copied tile by tile,
    re-cut with the same snapping grid where its tiles are not ``tile_size`` square.
    """
    if files.kind == "tiles":
        return tile_dataset(survey_id, files.config.source, files.adapter, out_dir, spec)
    return tile_scene(survey_id, files, out_dir, spec)


def tile_scene(survey_id: str, files: SurveyFiles, out_dir: Path, spec: TilingSpec,
               max_buffer_bytes: int = MAX_BUFFER_BYTES) -> gpd.GeoDataFrame:
    """Writes image tiles (and terrain tiles when a DEM exists) and returns the tile index.

    Layout: ``out_dir/image/<tile_id>.tif`` keeps the selected image bands and their dtype;
    ``out_dir/terrain/<tile_id>.tif`` holds float32 elevation (m), slope (degrees) and the
    optional terrain bands resampled (bilinear) onto the tile's grid.

    Returns:
        One row per kept tile: survey_id, tile_id, row_off, col_off, height, width,
        nodata_fraction, geometry (tile footprint) in the image CRS.

    Raises:
        SurveyInputError: unreadable pixels, a scene smaller than a tile, or no tile left
            after the nodata filter.
    """
    (out_dir / TILE_IMAGES).mkdir(parents=True, exist_ok=True)
    name = files.images[0] if len(files.images) == 1 else files.config.source
    dem_file = open_raster(files.dem) if files.dem else nullcontext(None)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_scene(files.images) as image, dem_file as dem:
        check_dtype(name, image.dtypes[0])
        bands, validity = _scene_bands(name, image, files.config.bands, files.config.nodata)
        rows_offsets, col_offsets = _offsets(name, image, spec)
        writers = _writers(image, bands, validity, files, spec, dem is not None)
        if dem is not None:
            (out_dir / TILE_TERRAIN).mkdir(exist_ok=True)
        reader = _StripReader(name, image, bands, validity, spec.tile_size)
        # Read once here: while tiling, only the reader thread may touch the image.
        crs, transform = image.crs, image.transform
        kept: list[tuple[int, int, float]] = []
        with BackgroundWrites() as writes:
            for chunk in column_chunks(col_offsets, spec.tile_size, reader.max_width(max_buffer_bytes)):
                # closing(): on an error the reader thread stops before the image is closed.
                with closing(_prefetched(reader.tile_rows(rows_offsets, chunk))) as strips:
                    for row, strip, invalid in strips:
                        terrain = (_terrain_strip(dem, transform, crs, files, (row, chunk[0]), strip.shape[1:])
                                   if dem is not None else None)
                        jobs, tiles = _tile_row(row, chunk, strip, invalid, terrain, spec, writers, out_dir)
                        writes.submit(_run_all, jobs)
                        kept.extend(tiles)
    if not kept:
        raise SurveyInputError(name, f"no tile has at most {spec.max_nodata_fraction:.0%} nodata; the scene is empty")
    return _tile_index(survey_id, kept, spec.tile_size, transform, crs)


def _scene_bands(name: Path, image: rasterio.DatasetReader, bands: tuple[int, ...] | None,
                 nodata: float | None) -> tuple[tuple[int, ...], _Validity]:
    """The image bands to write and how missing pixels are marked (override > alpha > nodata > mask)."""
    alpha = alpha_band(image)
    selected = select_bands(name, image.count, bands, alpha)
    nodata = nodata if nodata is not None else image.nodata
    use_alpha = alpha if nodata is None and alpha is not None and alpha not in selected else None
    flags = image.mask_flag_enums[0]
    per_dataset = MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags
    return selected, _Validity(nodata=nodata, alpha=use_alpha,
                               dataset_mask=nodata is None and use_alpha is None and per_dataset)


def _offsets(name: Path, image: rasterio.DatasetReader, spec: TilingSpec) -> tuple[list[int], list[int]]:
    try:
        return (tile_offsets(image.height, spec.tile_size, spec.step),
                tile_offsets(image.width, spec.tile_size, spec.step))
    except ValueError as err:
        raise SurveyInputError(name, f"{image.width}x{image.height} px scene: {err}") from err


def _writers(image: rasterio.DatasetReader, bands: tuple[int, ...], validity: _Validity, files: SurveyFiles,
             spec: TilingSpec, with_terrain: bool) -> dict[str, TileWriter]:
    size, sample = spec.tile_size, image.transform
    descriptions = tuple(image.descriptions[b - 1] for b in bands)
    writers = {TILE_IMAGES: TileWriter(TileProfile(size, size, len(bands), image.dtypes[0], image.crs, validity.nodata,
                                               descriptions, spec.compress), sample)}
    if with_terrain:
        names = files.config.terrain_bands
        writers[TILE_TERRAIN] = TileWriter(TileProfile(size, size, len(names), "float32", image.crs, math.nan, names,
                                                    spec.compress), sample)
    return writers


class _StripReader:
    """Reads a scene one tile row at a time over a group of tile columns.

    Each read extends the rows still needed by whole rows of the file's blocks, so every source
    row is read, and every block decoded, once. Every read fills a new buffer, so tiles cut from
    an earlier one can still be waiting to be written.
    """

    def __init__(self, name: Path, image: rasterio.DatasetReader, bands: tuple[int, ...], validity: _Validity,
                 tile_size: int) -> None:
        self.name, self.image, self.validity, self.tile_size = name, image, validity, tile_size
        self.n_image_bands = len(bands)
        self.indexes = list(bands) + ([validity.alpha] if validity.alpha else [])
        self.block_rows = max(1, min(image.block_shapes[0][0], 4 * tile_size))

    def max_width(self, max_bytes: int) -> int:
        """The widest column group whose buffer fits in ``max_bytes`` (one tile at least)."""
        row_bytes = len(self.indexes) * np.dtype(self.image.dtypes[0]).itemsize * (self.tile_size + self.block_rows)
        return max(self.tile_size, max_bytes // row_bytes)

    def tile_rows(self, rows: list[int], cols: list[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """Yields (row, pixels, invalid) per tile row: the image bands over rows [row, row + tile_size)
        of the column group, and its nodata pixels (None when the scene marks none)."""
        col0, width, size = cols[0], cols[-1] + self.tile_size - cols[0], self.tile_size
        buffer = np.empty((len(self.indexes), 0, width), dtype=self.image.dtypes[0])
        start = end = 0  # scene rows [start, end) are buffer rows [0, end - start)
        for row in rows:
            if row + size > end:
                keep = max(0, end - row)
                new_end = min(self.image.height, -(-(row + size) // self.block_rows) * self.block_rows)
                fresh = np.empty((len(self.indexes), new_end - row, width), dtype=buffer.dtype)
                fresh[:, :keep] = buffer[:, row - start:row - start + keep]
                self._read(Window(col0, row + keep, width, new_end - row - keep), fresh[:, keep:])
                buffer, start, end = fresh, row, new_end
            strip = buffer[:, row - start:row - start + size]
            yield row, strip[:self.n_image_bands], self._invalid(strip, row, col0)

    def _invalid(self, strip: np.ndarray, row: int, col0: int) -> np.ndarray | None:
        if self.validity.alpha:
            return strip[-1] == 0
        if self.validity.dataset_mask:
            return self.image.dataset_mask(window=Window(col0, row, strip.shape[2], strip.shape[1])) == 0
        return invalid_pixels(strip[:self.n_image_bands], self.validity.nodata)

    def _read(self, window: Window, out: np.ndarray) -> None:
        try:
            self.image.read(self.indexes, window=window, out=out)
        except RasterioIOError as err:
            detail = err.__cause__ or err  # GDAL's own message: which file, band and block failed
            raise SurveyInputError(self.name, f"cannot read pixels in rows {window.row_off}.."
                                              f"{window.row_off + window.height}; corrupt or truncated? "
                                              f"({detail})") from err


def _prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Advances an iterator on a background thread, up to ``depth`` items ahead of its consumer.

    GDAL releases the GIL while it reads and decodes, so the next strip is read while the tiles
    of this one are cut. An error of the iterator is raised in the consumer.
    """
    end = object()
    # One worker runs the next() calls in submission order, so the iterator is never shared.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strip-reader")
    try:
        pending = deque(pool.submit(next, items, end) for _ in range(depth))
        while (item := pending.popleft().result()) is not end:
            pending.append(pool.submit(next, items, end))
            yield item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _terrain_strip(dem: rasterio.DatasetReader, transform: Affine, crs: rasterio.crs.CRS, files: SurveyFiles,
                   origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Terrain bands over a strip, from the DEM resampled onto the image grid with a margin.

    Args:
        origin: Scene (row, col) of the strip's upper-left pixel.
        shape: (height, width) of the strip.
    """
    (row, col), (height, width) = origin, shape
    res_m = pixel_size_m(crs, transform, row + height / 2, col + width / 2)
    names = files.config.terrain_bands
    margin = terrain_margin(names, res_m, files.config.relief_radius_m)
    elevation = dem_on_grid(dem, transform @ Affine.translation(col, row), shape, crs, margin)
    return terrain_bands(elevation, res_m, margin, names, files.config.relief_radius_m)


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
        x, y = transform @ (cols + dc, rows + dr)
        corners_x.append(x)
        corners_y.append(y)
    xs, ys = np.stack(corners_x), np.stack(corners_y)
    geometry = shapely.box(xs.min(axis=0), ys.min(axis=0), xs.max(axis=0), ys.max(axis=0))
    return gpd.GeoDataFrame({
        "survey_id": survey_id, "tile_id": [tile_id(int(r), int(c)) for r, c in zip(rows, cols)],
        "row_off": rows.astype(np.int64), "col_off": cols.astype(np.int64), "height": size, "width": size,
        "nodata_fraction": fractions.astype(np.float64),
    }, geometry=geometry, crs=crs)
