"""Landslide polygons: reading, repairing, reprojecting, and burning them into tile masks.

Rasterizing uses ``all_touched=False``: a pixel is landslide when its centre lies inside a
polygon. ``all_touched=True`` would grow every landslide by up to one pixel all around, which at
0.1-0.5 m pixels biases small landslides' area upwards and inflates recall.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from shapely import make_valid

from landslide_pipeline.geo.errors import SurveyInputError


def read_label_polygons(path: Path, target_crs: str | rasterio.crs.CRS) -> gpd.GeoDataFrame:
    """Reads landslide polygons, repairs invalid ones, drops empties, and reprojects them.

    Raises:
        SurveyInputError: the file has no CRS or holds no polygon.
    """
    polygons = gpd.read_file(path)
    if polygons.crs is None:
        raise SurveyInputError(path, "labels have no CRS")
    polygons = polygons[~(polygons.geometry.isna() | polygons.geometry.is_empty)].copy()
    invalid = ~polygons.geometry.is_valid
    if invalid.any():
        polygons.loc[invalid, "geometry"] = polygons.geometry[invalid].apply(make_valid)
    polygons["geometry"] = polygons.geometry.apply(_polygonal_part)
    polygons = polygons[~polygons.geometry.is_empty]
    if polygons.empty:
        raise SurveyInputError(path, "labels hold no valid polygon")
    return polygons.to_crs(target_crs)


def _polygonal_part(geometry):
    """make_valid may return a collection with lines or points; only areas are landslides."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [g for g in getattr(geometry, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return gpd.GeoSeries(parts).union_all() if parts else geometry.__class__()


def rasterize_polygons(polygons: gpd.GeoSeries, transform, shape: tuple[int, int]) -> np.ndarray:
    """Burns polygons into a uint8 {0, 1} mask on the given grid (pixel centres inside)."""
    if len(polygons) == 0:
        return np.zeros(shape, dtype=np.uint8)
    return rasterize(((g, 1) for g in polygons), out_shape=shape, transform=transform,
                     fill=0, dtype="uint8", all_touched=False)


def write_label_masks(tile_index: gpd.GeoDataFrame, polygons: gpd.GeoDataFrame, out_dir: Path) -> gpd.GeoDataFrame:
    """Writes one mask GeoTIFF per tile (``out_dir/masks/<tile_id>.tif``) on the tile's grid.

    Returns:
        ``tile_index`` with a ``landslide_fraction`` column added.
    """
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    polygons = polygons.to_crs(tile_index.crs)
    fractions = []
    for tile in tile_index.itertuples():
        transform = _tile_transform(tile.geometry.bounds, tile.width, tile.height)
        hits = polygons.geometry.iloc[polygons.sindex.query(tile.geometry, predicate="intersects")]
        mask = rasterize_polygons(hits, transform, (tile.height, tile.width))
        _write_mask(out_dir / "masks" / f"{tile.tile_id}.tif", mask, transform, tile_index.crs)
        fractions.append(float(mask.mean()))
    return tile_index.assign(landslide_fraction=fractions)


def _tile_transform(bounds: tuple[float, float, float, float], width: int, height: int):
    return rasterio.transform.from_bounds(*bounds, width, height)


def _write_mask(path: Path, mask: np.ndarray, transform, crs) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1,
                       dtype="uint8", crs=crs, transform=transform, compress="deflate") as dst:
        dst.write(mask, 1)
        dst.set_band_description(1, "landslide")
