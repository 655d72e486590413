"""Landslide labels: reading, repairing, reprojecting, and burning them into tile masks.

Vector labels (GeoPackage, GeoJSON, Shapefile) are rasterized with ``all_touched=False``: a pixel
is landslide when its centre lies inside a polygon. ``all_touched=True`` would grow every
landslide by up to one pixel all around, which at 0.1-0.5 m pixels biases small landslides' area
upwards and inflates recall. Labelme JSON is drawn the way Labelme draws it (see ``geo.labelme``),
so its masks match the ones Labelme exports. Invalid polygons are repaired with ``make_valid``
(a self-intersecting ring becomes the areas it encloses); lines and points left over by the
repair, and empty geometries, are dropped. A feature whose coordinates make no geometry at all
(an unclosed ring, a ring of two points) is refused, naming the feature. A label layer without
any feature means a survey without landslides: its tiles get all-zero masks (a survey without a
label file, by contrast, is only mapped, never trained on).
"""

from __future__ import annotations

import sqlite3
import warnings
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely import make_valid
from shapely.geometry.base import BaseGeometry

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.labelme import DEFAULT_LABEL_NAMES, LabelmeDocument, labelme_mask, read_labelme
from landslide_pipeline.geo.mosaic import open_scene
from landslide_pipeline.geo.tile_writer import BackgroundWrites, TileProfile, TileWriter
from landslide_pipeline.layout import MASK_FOLDER

SceneLabels: TypeAlias = gpd.GeoDataFrame | LabelmeDocument
#: GDAL's warning when it reads a ring that does not end where it starts (GEOS then refuses it).
_UNCLOSED_RING = "Non closed ring detected"


@dataclass(frozen=True)
class LabelFile:
    """A scene's label file and how to read it.

    Attributes:
        path: The file (GeoPackage, GeoJSON, Shapefile or Labelme JSON).
        format: "gpkg", "geojson", "shapefile" or "labelme".
        layer: The vector layer to read (None: the first).
        names: Labelme shape labels that mark a landslide.
    """

    path: Path
    format: str
    layer: str | None = None
    names: tuple[str, ...] = DEFAULT_LABEL_NAMES


def read_label_polygons(path: Path, target_crs: str | rasterio.crs.CRS | None,
                        layer: str | None = None) -> gpd.GeoDataFrame:
    """Reads landslide polygons, repairs invalid ones, drops empties, and reprojects them.

    A layer without any feature is a survey without landslides: it gives an empty frame, and
    so all-zero masks.

    Raises:
        SurveyInputError: unreadable file, a GeoPackage without any layer, a feature whose
            coordinates do not make a geometry (an unclosed ring, too few points), no CRS,
            longitude/latitude out of range, or features of which none is a polygon.
    """
    check_vector_file(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _UNCLOSED_RING, RuntimeWarning)  # the error below says it better
            polygons = gpd.read_file(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        raise _unreadable(path, err) from err
    except shapely.errors.GEOSException as err:
        raise _invalid_feature(path, layer, err) from err
    if polygons.crs is None:
        raise SurveyInputError(path, "labels have no CRS")
    if not polygons.empty:  # an empty layer is a survey without landslides
        polygons = _repaired(path, polygons)
    return polygons.to_crs(target_crs) if target_crs is not None else polygons


def _repaired(path: Path, polygons: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Polygons made valid, lines, points and empties dropped; refuses when no polygon is left."""
    _check_geographic_range(path, polygons)
    found = _describe(polygons.geometry)
    polygons = polygons[~(polygons.geometry.isna() | polygons.geometry.is_empty)].copy()
    invalid = ~polygons.geometry.is_valid
    if invalid.any():
        polygons.loc[invalid, "geometry"] = polygons.geometry[invalid].apply(make_valid)
    polygons["geometry"] = polygons.geometry.apply(_polygonal_part)
    polygons = polygons[~polygons.geometry.is_empty]
    if polygons.empty:
        raise SurveyInputError(path, f"labels hold no valid polygon (found {found}); a survey without landslides "
                                     "takes a label layer without any feature")
    return polygons


def vector_info(path: Path, layer: str | None = None) -> dict[str, Any]:
    """A vector label layer's CRS, feature count and bounds (``pyogrio.read_info``), read from its header.

    Raises:
        SurveyInputError: the file cannot be read, or is a GeoPackage without any layer.
    """
    check_vector_file(path)
    try:
        return pyogrio.read_info(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        raise _unreadable(path, err) from err


#: What a label file must start with: a GeoPackage (SQLite), a Shapefile, or GeoJSON text.
_VECTOR_MAGIC = {b"SQLite format 3\x00": "GeoPackage", b"\x00\x00\x27\x0a": "Shapefile"}


def check_vector_file(path: Path) -> None:
    """Refuses a label file that is no local GeoPackage, Shapefile or GeoJSON, before GDAL opens it.

    GDAL (through pyogrio) would otherwise probe every vector driver it has, among them drivers
    that fetch URLs or read other files named inside the label file (e.g. a VRT, or a WFS
    description), so a hostile label file could make the pipeline read elsewhere or call out.

    Raises:
        SurveyInputError: a remote or virtual path, or content of another kind.
    """
    text = str(path)
    if text.startswith("/vsi") or "://" in text:
        raise SurveyInputError(path, "label files are read from local paths only (no /vsi or URL)")
    with open(path, "rb") as handle:
        head = handle.read(64)
    if any(head.startswith(magic) for magic in _VECTOR_MAGIC) or head.lstrip()[:1] == b"{":
        return
    found = "XML" if head.lstrip()[:1] == b"<" else "text" if head.isascii() else "binary data"
    raise SurveyInputError(path, f"not a GeoPackage, Shapefile or GeoJSON file (found {found}); label files are "
                                 "read with those drivers only")


def _unreadable(path: Path, err: Exception) -> SurveyInputError:
    """The error for a label file GDAL cannot open; a GeoPackage without any layer is named as such."""
    if _empty_geopackage(Path(path)):
        return SurveyInputError(path, "the GeoPackage holds no layer. A survey without landslides takes a layer "
                                      "without any feature (all-zero masks); an unlabelled survey, no label file")
    return SurveyInputError(path, f"cannot read vector labels ({err})")


def _empty_geopackage(path: Path) -> bool:
    """Whether ``path`` is a GeoPackage without any table: GDAL refuses to open one read-only."""
    if path.suffix.lower() != ".gpkg" or not path.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM gpkg_contents").fetchone()[0] == 0
    except sqlite3.Error:  # not SQLite, or no gpkg_contents table: not an empty GeoPackage
        return False


def _invalid_feature(path: Path, layer: str | None, err: shapely.errors.GEOSException) -> SurveyInputError:
    """Names the first feature whose coordinates GEOS refuses (GDAL reads an unclosed ring as it is)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _UNCLOSED_RING, RuntimeWarning)
        _, fids, geometries, _ = pyogrio.raw.read(path, layer=layer, columns=[], return_fids=True)
    for position, (fid, wkb) in enumerate(zip(fids, geometries)):
        try:
            shapely.from_wkb(wkb)
        except shapely.errors.GEOSException as bad:
            return SurveyInputError(path, f"feature {position + 1} of {len(geometries)} (FID {fid}) has invalid "
                                          f"coordinates: {bad}; a ring must have 4 or more points and end where "
                                          "it starts")
    return SurveyInputError(path, f"invalid geometry ({err})")


def _check_geographic_range(path: Path, polygons: gpd.GeoDataFrame) -> None:
    """Refuses projected coordinates in a file whose CRS says longitude/latitude."""
    if not polygons.crs.is_geographic:
        return
    west, south, east, north = polygons.total_bounds
    if west < -180 or east > 360 or south < -90 or north > 90:
        raise SurveyInputError(path, f"coordinates ({west:.6g}, {south:.6g}) .. ({east:.6g}, {north:.6g}) are no "
                                     f"longitude/latitude, but the labels' CRS {polygons.crs.to_string()} is; "
                                     "GeoJSON without a crs member is read as WGS 84 (RFC 7946): reproject the "
                                     "labels to WGS 84, or save them as GeoPackage with their CRS")


def _describe(geometries: gpd.GeoSeries) -> str:
    kinds = geometries.geom_type.fillna("no geometry").where(~geometries.is_empty, "empty")
    counts = kinds.value_counts()
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "no feature"


def _polygonal_part(geometry: BaseGeometry) -> BaseGeometry:
    """make_valid may return a collection with lines or points; only areas are landslides."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [g for g in getattr(geometry, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return gpd.GeoSeries(parts).union_all() if parts else geometry.__class__()


def read_scene_labels(labels: LabelFile, crs: rasterio.crs.CRS | None) -> SceneLabels:
    """A scene's labels: polygons in ``crs``, or a Labelme document in pixel coordinates."""
    if labels.format == "labelme":
        return read_labelme(labels.path, labels.names)
    return read_label_polygons(labels.path, crs, labels.layer)


def rasterize_polygons(polygons: gpd.GeoSeries, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Burns polygons into a uint8 {0, 1} mask on the given grid (pixel centres inside)."""
    if len(polygons) == 0:
        return np.zeros(shape, dtype=np.uint8)
    return rasterize(((g, 1) for g in polygons), out_shape=shape, transform=transform,
                     fill=0, dtype="uint8", all_touched=False)


def write_label_masks(tile_index: gpd.GeoDataFrame, labels: SceneLabels, out_dir: Path,
                      scene_transform: Affine | None = None) -> gpd.GeoDataFrame:
    """Writes one mask GeoTIFF per tile (``out_dir/masks/<tile_id>.tif``) on the tile's grid.

    Args:
        tile_index: The scene's tile index.
        labels: Polygons (any CRS) or a Labelme document of the whole scene.
        out_dir: Where ``masks/`` goes.
        scene_transform: The scene's transform; without it a north-up grid is derived from the
            first tile's footprint.

    Returns:
        ``tile_index`` with a ``landslide_fraction`` column added.
    """
    (out_dir / MASK_FOLDER).mkdir(parents=True, exist_ok=True)
    if isinstance(labels, gpd.GeoDataFrame):
        labels = labels.to_crs(tile_index.crs)
    first = tile_index.iloc[0]
    grid = scene_transform or _grid_from_footprint(first)
    writer = TileWriter(TileProfile(int(first.height), int(first.width), 1, "uint8", tile_index.crs, None,
                                    ("landslide",)), grid)
    fractions = []
    with BackgroundWrites() as writes:
        for tile in tile_index.itertuples():
            mask = _tile_mask(labels, tile, writer.transform(tile.row_off, tile.col_off))
            writes.submit(writer.prepare(out_dir / MASK_FOLDER / f"{tile.tile_id}.tif", mask[None], tile.row_off,
                                         tile.col_off))
            fractions.append(float(mask.mean()))
    return tile_index.assign(landslide_fraction=fractions)


def _grid_from_footprint(tile: pd.Series) -> Affine:
    """A north-up scene transform recovered from one tile's footprint and offsets."""
    tile_grid = rasterio.transform.from_bounds(*tile.geometry.bounds, tile.width, tile.height)
    return tile_grid @ Affine.translation(-tile.col_off, -tile.row_off)


def _tile_mask(labels: SceneLabels, tile: Any, transform: Affine) -> np.ndarray:
    shape = (tile.height, tile.width)
    if isinstance(labels, LabelmeDocument):
        return labelme_mask(labels, shape, tile.row_off, tile.col_off)
    hits = labels.geometry.iloc[labels.sindex.query(tile.geometry, predicate="intersects")]
    return rasterize_polygons(hits, transform, shape)


def label_scene_tiles(images: tuple[Path, ...], labels: LabelFile, tile_index: gpd.GeoDataFrame,
                      out_dir: Path) -> gpd.GeoDataFrame:
    """Rasterizes a scene's labels into a mask per tile of its index (``write_label_masks``).

    Raises:
        SurveyInputError: the labels cannot be read.
    """
    with open_scene(images) as src:
        scene_transform = src.transform
    return write_label_masks(tile_index, read_scene_labels(labels, tile_index.crs), out_dir, scene_transform)


def drop_empty_tiles(labelled: pd.DataFrame, masks_dir: Path, min_landslide_fraction: float = 0.0,
                     keep_empty_fraction: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Keeps a seeded share of the tiles without landslide and deletes the others' masks.

    Args:
        labelled: Tile index with ``landslide_fraction``.
        masks_dir: Folder of the masks (``<tile_id>.tif``).
        min_landslide_fraction: A tile whose landslide fraction is at most this counts as empty.
        keep_empty_fraction: Share of the empty tiles to keep (1 keeps all, 0 none).
        seed: Seed of the choice of empty tiles.

    Returns:
        The kept rows, in their original order.
    """
    if not 0.0 <= keep_empty_fraction <= 1.0 or not 0.0 <= min_landslide_fraction < 1.0:
        raise ValueError("keep_empty_fraction must be within 0..1 and min_landslide_fraction within 0..1 (excl.)")
    empty = np.flatnonzero(labelled["landslide_fraction"].to_numpy() <= min_landslide_fraction)
    n_keep = round(keep_empty_fraction * len(empty))
    dropped = np.setdiff1d(empty, np.random.default_rng(seed).choice(empty, n_keep, replace=False))
    for tile_id in labelled["tile_id"].iloc[dropped]:
        (masks_dir / f"{tile_id}.tif").unlink()
    return labelled.drop(index=labelled.index[dropped])
