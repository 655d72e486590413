"""Landslide polygons from a mapped survey's mask, with area, perimeter and mean probability.

The mask is read in strips of ``strip_rows`` rows, so memory is bounded by one strip (about
13 bytes per pixel of it) plus the polygons, whatever the survey's size. In each strip the
landslide pixels are grouped into 4-connected components (``scipy.ndimage.label``, the
connectivity ``rasterio.features.shapes`` traces with) and each component is traced into one
polygon on the pixel grid; the sum of its probabilities is taken at the same time. Components
that reach a strip's cut are joined with their neighbours across it at the end (an exact union
on integer pixel coordinates), summing their pixels and probabilities, so the result is the same
whatever ``strip_rows`` is. Pixels that touch only at a corner stay separate landslides.

Polygons are then moved to map coordinates, simplified (Douglas-Peucker, topology kept) by
``simplify_m``, measured, and dropped when smaller than ``min_area_m2``; ``area_m2`` and
``perimeter_m`` are those of the written (simplified) outline, as a GIS measures it.

Measuring: in a projected CRS, in its plane, its unit converted to metres (exact for UTM and
other local projections; Web Mercator's areas would be inflated, as anywhere). In a geographic
CRS, the polygons are simplified and measured in the UTM zone of their centre and written back
in the survey's CRS. A mask without a CRS is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from pyproj import CRS as ProjCRS
from rasterio.features import shapes
from rasterio.windows import Window
from scipy import ndimage
from shapely import STRtree
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.rasters import open_raster
from landslide_pipeline.mapping.styles import embed_layer_style, landslides_qml
from landslide_pipeline.storage import atomic_file

LANDSLIDES_LAYER = "landslides"
COLUMNS = ["landslide_id", "area_m2", "perimeter_m", "mean_probability", "pixels"]


@dataclass(frozen=True)
class VectorizeSpec:
    """How to turn the mask into polygons.

    Attributes:
        min_area_m2: Polygons with a smaller (simplified) area are dropped; 20 m2 as the
            object-oriented labels' minimum.
        simplify_m: Douglas-Peucker tolerance in metres (0 keeps the pixel staircase).
        strip_rows: Mask rows read and traced at a time (bounds memory, not the result).
    """

    min_area_m2: float = 20.0
    simplify_m: float = 0.5
    strip_rows: int = 1024

    def __post_init__(self) -> None:
        if self.min_area_m2 < 0 or self.simplify_m < 0:
            raise ValueError(f"min_area_m2 and simplify_m must be >= 0, got {self.min_area_m2}, {self.simplify_m}")
        if self.strip_rows < 1:
            raise ValueError(f"strip_rows must be >= 1, got {self.strip_rows}")


@dataclass
class _Pieces:
    """Landslide components traced so far: pixel-grid polygons with their pixel and probability sums."""

    geometries: list[BaseGeometry]
    pixels: list[int]
    probability_sums: list[float]
    probability_pixels: list[int]
    at_cut: list[bool]


def vectorize_landslides(mask: Path, probability: Path, out: Path,
                         spec: VectorizeSpec = VectorizeSpec()) -> gpd.GeoDataFrame:
    """Traces the mask's landslides and writes them to the GeoPackage ``out`` (layer "landslides").

    Returns:
        The polygons written (see ``landslide_polygons``).
    """
    frame = landslide_polygons(mask, probability, spec)
    write_geopackage(frame, out, style=landslides_qml())
    return frame


def landslide_polygons(mask: Path, probability: Path, spec: VectorizeSpec = VectorizeSpec()) -> gpd.GeoDataFrame:
    """One polygon per landslide of the mask, in the mask's CRS.

    Args:
        mask: uint8 raster, 1 = landslide (any other value is not).
        probability: Landslide probability on the same grid; stored values are decoded with the
            band's scale and offset, and its nodata pixels do not count in the mean (NaN for a
            landslide with none known).
        spec: Minimum area, simplification and strip height.

    Returns:
        Columns landslide_id (1.., top to bottom, then left to right), area_m2, perimeter_m,
        mean_probability, pixels (mask pixels of the landslide), and Polygon geometry.

    Raises:
        SurveyInputError: unreadable rasters, a mask without CRS, or rasters on different grids.
    """
    with open_raster(mask) as mask_src, open_raster(probability) as probability_src:
        _check_grids(Path(mask), mask_src, Path(probability), probability_src)
        crs, transform = mask_src.crs, mask_src.transform
        pieces = _trace(mask_src, probability_src, spec.strip_rows)
    joined, pixels, sums, counts = _join_at_cuts(pieces)
    pixel_geometries = np.asarray(joined, dtype=object)
    bounds = shapely.bounds(pixel_geometries).reshape(-1, 4)
    order = np.lexsort((bounds[:, 0], bounds[:, 1]))  # top row first, then left column
    geometries = _to_map(pixel_geometries[order], transform)
    valid_counts = np.asarray(counts, dtype=np.float64)
    mean = np.divide(sums, valid_counts, out=np.full(len(valid_counts), np.nan), where=valid_counts > 0)
    frame = gpd.GeoDataFrame({"pixels": np.asarray(pixels, dtype=np.int64)[order], "mean_probability": mean[order]},
                             geometry=geometries, crs=crs)
    return _measure(frame, spec)


def write_geopackage(frame: gpd.GeoDataFrame, path: Path, layer: str = LANDSLIDES_LAYER, style: str | None = None) -> None:
    """Writes polygons to a GeoPackage atomically (an empty frame gives an empty Polygon layer),
    with ``style`` (QGIS QML) as the layer's default style."""
    with atomic_file(Path(path)) as staging:
        staging.unlink()  # the GeoPackage driver creates the file; an empty one would not open
        frame.to_file(staging, layer=layer, driver="GPKG", geometry_type="Polygon")
        if style is not None:
            embed_layer_style(staging, layer, style, layer)


def _check_grids(mask_path: Path, mask: rasterio.DatasetReader, probability_path: Path,
                 probability: rasterio.DatasetReader) -> None:
    if mask.crs is None:
        raise SurveyInputError(mask_path, "has no CRS; landslide areas in m2 need one")
    if (mask.shape, mask.transform, mask.crs) != (probability.shape, probability.transform, probability.crs):
        raise SurveyInputError(probability_path, f"is not on the grid of the mask {mask_path} "
                                                 "(shape, transform and CRS must match)")


def _trace(mask: rasterio.DatasetReader, probability: rasterio.DatasetReader, strip_rows: int) -> _Pieces:
    """Traces the landslide components of every strip, marking those that reach a cut."""
    pieces = _Pieces([], [], [], [], [])
    scale, offset, nodata = probability.scales[0], probability.offsets[0], probability.nodata
    for row in range(0, mask.height, strip_rows):
        height = min(strip_rows, mask.height - row)
        window = Window(0, row, mask.width, height)
        labels, n = ndimage.label(mask.read(1, window=window) == 1)
        if n == 0:
            continue
        stored = probability.read(1, window=window)
        known = stored != nodata if nodata is not None else np.ones(stored.shape, dtype=bool)
        values = stored[known].astype(np.float64) * scale + offset
        sums = np.bincount(labels[known], weights=values, minlength=n + 1)
        known_pixels = np.bincount(labels[known], minlength=n + 1)
        pixels = np.bincount(labels.ravel(), minlength=n + 1)
        cuts = (row if row > 0 else None, row + height if row + height < mask.height else None)
        traced = shapes(labels, mask=labels > 0, connectivity=4, transform=Affine.translation(0, row))
        for geometry, label in _one_per_label(traced):
            pieces.geometries.append(geometry)
            pieces.pixels.append(int(pixels[label]))
            pieces.probability_sums.append(float(sums[label]))
            pieces.probability_pixels.append(int(known_pixels[label]))
            pieces.at_cut.append(geometry.bounds[1] == cuts[0] or geometry.bounds[3] == cuts[1])
    return pieces


def _one_per_label(traced: Iterable[tuple[dict, float]]) -> list[tuple[BaseGeometry, int]]:
    """(polygon, label) pairs, uniting the rare labels GDAL traces as more than one ring set."""
    by_label: dict[int, list] = {}
    for geojson, value in traced:
        by_label.setdefault(int(value), []).append(shape(geojson))
    return [(parts[0] if len(parts) == 1 else shapely.union_all(parts), label) for label, parts in by_label.items()]


def _join_at_cuts(pieces: _Pieces) -> tuple[list[BaseGeometry], list[int], list[float], list[int]]:
    """Unites the pieces that share a strip cut; returns geometries, pixels, probability sums and counts."""
    at_cut = np.asarray(pieces.at_cut, dtype=bool)
    keep = np.flatnonzero(~at_cut)
    geometries = [pieces.geometries[i] for i in keep]
    pixels = [pieces.pixels[i] for i in keep]
    sums = [pieces.probability_sums[i] for i in keep]
    counts = [pieces.probability_pixels[i] for i in keep]
    cut = np.flatnonzero(at_cut)
    if len(cut):
        joined = list(shapely.get_parts(shapely.union_all([pieces.geometries[i] for i in cut])))
        inside = [pieces.geometries[i].representative_point() for i in cut]
        piece_idx, joined_idx = STRtree(joined).query(inside, predicate="within")
        totals = np.zeros((len(joined), 3))
        for p, j in zip(piece_idx, joined_idx):
            i = cut[p]
            totals[j] += (pieces.pixels[i], pieces.probability_sums[i], pieces.probability_pixels[i])
        geometries += joined
        pixels += totals[:, 0].astype(np.int64).tolist()
        sums += totals[:, 1].tolist()
        counts += totals[:, 2].astype(np.int64).tolist()
    return geometries, pixels, sums, counts


def _to_map(geometries: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel-grid (col, row) geometries in map coordinates."""
    a, b, c, d, e, f = transform[:6]
    return shapely.transform(geometries, lambda xy: np.column_stack(
        (a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f)))


def _measure(frame: gpd.GeoDataFrame, spec: VectorizeSpec) -> gpd.GeoDataFrame:
    """Simplifies in a metric plane, measures area and perimeter, drops small polygons, numbers them."""
    crs = ProjCRS.from_user_input(frame.crs)
    if crs.is_geographic and len(frame):
        metric = frame.to_crs(frame.estimate_utm_crs())
        metric["geometry"] = metric.geometry.simplify(spec.simplify_m, preserve_topology=True)
        area, perimeter = metric.geometry.area.to_numpy(), metric.geometry.length.to_numpy()
        geometry = metric.geometry.to_crs(frame.crs).to_numpy()
    else:
        metres = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        geometry = frame.geometry.simplify(spec.simplify_m / metres, preserve_topology=True).to_numpy()
        area, perimeter = shapely.area(geometry) * metres**2, shapely.length(geometry) * metres
    table = pd.DataFrame({"area_m2": area, "perimeter_m": perimeter,
                          "mean_probability": frame["mean_probability"].to_numpy(),
                          "pixels": frame["pixels"].to_numpy()})
    kept = np.asarray(area, dtype=np.float64) >= spec.min_area_m2
    table = table[kept].reset_index(drop=True)
    table.insert(0, "landslide_id", np.arange(1, len(table) + 1, dtype=np.int64))
    return gpd.GeoDataFrame(table, geometry=np.asarray(geometry, dtype=object)[kept], crs=frame.crs)[
        [*COLUMNS, "geometry"]]
