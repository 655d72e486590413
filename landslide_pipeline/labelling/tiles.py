"""Object-oriented labels on the survey's tile grid, in the manual labels' layout.

A label source's folder holds ``masks/<tile_id>.tif`` (uint8 {0, 1} on each tile's grid) and a
tile index with ``landslide_fraction``, whatever drew the labels; so training reads manual and
object-oriented labels alike. This module writes that layout from a classified scene and reads a
label source's tile masks back as a scene-wide reference (for thresholds from samples).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.labelling.obia import ReferenceMasks, SceneLabels, label_scene
from landslide_pipeline.labelling.rules import RuleSet
from landslide_pipeline.labelling.scene import RasterSource
from landslide_pipeline.layout import LABEL_INDEX, MASK_FOLDER, OBIA_SEGMENTS, OBIA_THRESHOLDS
from landslide_pipeline.progress import Progress, no_progress
from landslide_pipeline.schemas import ObiaSegments, TileIndex


class TileGridError(ValueError):
    """A tile index that does not lie on the scene's pixel grid."""


def check_tile_grid(index: pd.DataFrame, height: int, width: int, transform: Affine) -> None:
    """Checks that every tile is a window of the scene, and that the tiles' footprints agree.

    Raises:
        TileGridError: unplaced tiles (a pre-cut data set), a tile outside the scene, or
            footprints off the scene's grid (tiles cut from another image, e.g. a mosaic).
    """
    if (index["row_off"] < 0).any():
        raise TileGridError("the tiles have no place in a scene (a pre-cut tile data set)")
    outside = (index["row_off"] + index["height"] > height) | (index["col_off"] + index["width"] > width)
    if outside.any():
        raise TileGridError(f"{int(outside.sum())} tile(s) reach outside the {width}x{height} px image")
    if isinstance(index, gpd.GeoDataFrame) and len(index):
        tile = index.iloc[0]
        expected = rasterio.windows.bounds(Window(tile.col_off, tile.row_off, tile.width, tile.height), transform)
        tolerance = 1e-3 * max(abs(transform.a), abs(transform.e))
        if not np.allclose(tile.geometry.bounds, expected, atol=tolerance):
            raise TileGridError(f"tile {tile.tile_id} has footprint {tile.geometry.bounds}, but the image puts "
                                f"it at {expected}: the tiles were cut from another image")


def write_tile_masks(labels: SceneLabels, index: gpd.GeoDataFrame, out_dir: Path) -> gpd.GeoDataFrame:
    """Writes ``out_dir/masks/<tile_id>.tif`` for every tile of the index.

    The masks have the manual masks' profile: one uint8 band described "landslide", the tile's
    transform and the scene's CRS, uncompressed, one strip.

    Returns:
        The index with a ``landslide_fraction`` column.
    """
    source = labels.segmentation.source
    check_tile_grid(index, source.height, source.width, source.transform)
    (out_dir / MASK_FOLDER).mkdir(parents=True, exist_ok=True)
    fractions = []
    for tile in index.itertuples():
        mask = labels.mask(tile.row_off, tile.col_off, tile.height, tile.width)
        transform = window_transform(Window(tile.col_off, tile.row_off, tile.width, tile.height), source.transform)
        with rasterio.open(out_dir / MASK_FOLDER / f"{tile.tile_id}.tif", "w", driver="GTiff", width=tile.width,
                           height=tile.height, count=1, dtype="uint8", crs=source.crs, transform=transform,
                           interleave="band", tiled=False, blockysize=tile.height) as dst:
            dst.write(mask, 1)
            dst.set_band_description(1, "landslide")
        fractions.append(float(mask.mean()))
    return index.assign(landslide_fraction=np.asarray(fractions, dtype=np.float64))


class TileMasks:
    """A label source's tile masks read back as windows of the scene.

    Calling it with a window gives (landslide mask, known): ``known`` is False where no tile
    covers the window, so missing tiles count neither as landslide nor as background.
    """

    def __init__(self, index: pd.DataFrame, masks_dir: Path) -> None:
        self._tiles = index[["tile_id", "row_off", "col_off", "height", "width"]].reset_index(drop=True)
        self._dir = Path(masks_dir)

    def __call__(self, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        mask = np.zeros((height, width), dtype=np.uint8)
        known = np.zeros((height, width), dtype=bool)
        t = self._tiles
        hits = t[(t.row_off < row + height) & (t.row_off + t.height > row)
                 & (t.col_off < col + width) & (t.col_off + t.width > col)]
        for tile in hits.itertuples():
            r0, c0 = max(tile.row_off, row), max(tile.col_off, col)
            r1, c1 = min(tile.row_off + tile.height, row + height), min(tile.col_off + tile.width, col + width)
            with rasterio.open(self._dir / f"{tile.tile_id}.tif") as src:
                part = src.read(1, window=Window(c0 - tile.col_off, r0 - tile.row_off, c1 - c0, r1 - r0))
            mask[r0 - row:r1 - row, c0 - col:c1 - col] |= part
            known[r0 - row:r1 - row, c0 - col:c1 - col] = True
        return mask, known


@dataclass(frozen=True)
class SurveyObiaLabels:
    """What ``label_survey_objects`` produced besides the masks it wrote.

    Attributes:
        labels: The tile index with ``landslide_fraction`` (the label table).
        segments: The classified objects with outlines and features.
        thresholds: Every threshold the rules used, with how it was found.
        summary: Counts and scales (``SceneLabels.summary``).
    """

    labels: gpd.GeoDataFrame
    segments: gpd.GeoDataFrame
    thresholds: list[dict[str, Any]]
    summary: dict[str, Any]


def label_survey_objects(scene: SceneFiles, index: gpd.GeoDataFrame, rules: RuleSet, out_dir: Path,
                         reference: ReferenceMasks | None = None, progress: Progress = no_progress) -> SurveyObiaLabels:
    """Object-oriented labels of a survey's scene, written in the manual labels' layout.

    Writes ``masks/<tile_id>.tif`` and ``labels.parquet`` like manual labels, plus
    ``segments.parquet`` (the classified objects) and ``thresholds.json`` (every threshold used).
    The scratch rasters of the segmentation go into a temporary folder inside ``out_dir`` (on
    the data disk, not in the system's temporary folder) and are gone when this returns.

    Args:
        scene: The survey's scene: image (or crops to mosaic), DEM, band selection and nodata.
        index: The survey's tile index (the tiles must be windows of the scene).
        rules: The rule set.
        out_dir: The label folder to write into.
        reference: Reference masks for thresholds from labelled samples.
        progress: Called with the windows done and their total (``labelling.obia.label_scene``).

    Raises:
        TileGridError: the tiles are not windows of the image.
        SurveyInputError: the rules use features that need bands the image lacks.
        pandera.errors.SchemaError: a table does not hold its schema.
    """
    with RasterSource(scene) as source:
        check_tile_grid(index, source.height, source.width, source.transform)
        with label_scene(source, rules, scratch_dir=out_dir, reference=reference, image=scene.name,
                         progress=progress) as labels:
            labelled = write_tile_masks(labels, index, out_dir)
            result = SurveyObiaLabels(labels=labelled, segments=labels.objects,
                                      thresholds=labels.classification.thresholds, summary=labels.summary())
    TileIndex.validate(result.labels)
    ObiaSegments.validate(result.segments)
    result.labels.to_parquet(out_dir / LABEL_INDEX, index=False)
    result.segments.to_parquet(out_dir / OBIA_SEGMENTS, index=False)
    (out_dir / OBIA_THRESHOLDS).write_text(json.dumps(
        {"rules": rules.source, "thresholds": result.thresholds, "summary": result.summary}, indent=2, default=str))
    return result
