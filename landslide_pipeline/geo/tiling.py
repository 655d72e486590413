"""Cutting a survey into GeoTIFF tiles that keep their own transforms.

Tiles are read window by window, so memory is bounded by one tile whatever the scene size.
The last row and column of tiles are snapped inside the scene (they overlap their neighbour a
little) instead of being padded, so no tile holds an artificial border stripe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.windows import Window, bounds as window_bounds
from shapely.geometry import box

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.survey import SurveyFiles
from landslide_pipeline.geo.terrain import dem_on_grid, terrain_bands

TERRAIN_BANDS = ("elevation", "slope")


@dataclass(frozen=True)
class TilingSpec:
    """How to cut a scene into tiles.

    Attributes:
        tile_size: Tile width and height in pixels.
        stride: Step between tile origins; ``tile_size`` means no overlap.
        max_nodata_fraction: Tiles with more nodata than this are skipped.
    """

    tile_size: int = 128
    stride: int | None = None
    max_nodata_fraction: float = 0.5

    @property
    def step(self) -> int:
        return self.stride or self.tile_size


def tile_offsets(length: int, tile_size: int, stride: int) -> list[int]:
    """Tile origins along one axis; the last one is snapped so the tile ends at ``length``."""
    if length < tile_size:
        raise ValueError(f"scene side of {length} px is smaller than the tile size {tile_size}")
    offsets = list(range(0, length - tile_size + 1, stride))
    if offsets[-1] + tile_size < length:
        offsets.append(length - tile_size)
    return offsets


def plan_windows(height: int, width: int, spec: TilingSpec) -> Iterator[Window]:
    """All tile windows of a scene, row by row."""
    for row in tile_offsets(height, spec.tile_size, spec.step):
        for col in tile_offsets(width, spec.tile_size, spec.step):
            yield Window(col, row, spec.tile_size, spec.tile_size)


def tile_id(window: Window) -> str:
    return f"r{int(window.row_off):06d}_c{int(window.col_off):06d}"


def tile_survey(survey_id: str, files: SurveyFiles, out_dir: Path, spec: TilingSpec) -> gpd.GeoDataFrame:
    """Writes image tiles (and terrain tiles when a DEM exists) and returns the tile index.

    Layout: ``out_dir/image/<tile_id>.tif`` keeps the image's bands and dtype;
    ``out_dir/terrain/<tile_id>.tif`` holds float32 elevation (m) and slope (degrees) resampled
    onto the tile's grid.

    Returns:
        One row per kept tile: survey_id, tile_id, row_off, col_off, height, width,
        nodata_fraction, geometry (tile footprint) in the image CRS.
    """
    (out_dir / "image").mkdir(parents=True, exist_ok=True)
    rows = []
    with rasterio.open(files.image) as image, _open_optional(files.dem) as dem:
        if dem is not None:
            (out_dir / "terrain").mkdir(exist_ok=True)
        for window in plan_windows(image.height, image.width, spec):
            pixels = image.read(window=window)
            nodata_fraction = float((image.dataset_mask(window=window) == 0).mean())
            if nodata_fraction > spec.max_nodata_fraction:
                continue
            name = tile_id(window)
            transform = image.window_transform(window)
            _write_tile(out_dir / "image" / f"{name}.tif", pixels, image, transform, image.nodata)
            if dem is not None:
                elevation = dem_on_grid(dem, transform, pixels.shape[1:], image.crs)
                terrain = terrain_bands(elevation, image.res)
                _write_tile(out_dir / "terrain" / f"{name}.tif", terrain, image, transform, np.nan,
                            descriptions=TERRAIN_BANDS)
            rows.append(dict(survey_id=survey_id, tile_id=name, row_off=int(window.row_off),
                             col_off=int(window.col_off), height=int(window.height), width=int(window.width),
                             nodata_fraction=nodata_fraction,
                             geometry=box(*window_bounds(window, image.transform))))
        crs = image.crs
    if not rows:
        raise SurveyInputError(files.image, "no tile passed the nodata filter; the scene is empty")
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


def _open_optional(path: Path | None):
    if path is None:
        from contextlib import nullcontext

        return nullcontext(None)
    return rasterio.open(path)


def _write_tile(path: Path, pixels: np.ndarray, like: rasterio.DatasetReader, transform, nodata,
                descriptions: tuple[str, ...] | None = None) -> None:
    profile = dict(driver="GTiff", width=pixels.shape[2], height=pixels.shape[1], count=pixels.shape[0],
                   dtype=pixels.dtype, crs=like.crs, transform=transform, nodata=nodata, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
        for band, text in enumerate(descriptions or like.descriptions, start=1):
            if text:
                dst.set_band_description(band, text)
