"""Finding and validating the files of one survey folder.

A survey folder (``data/raw/<survey_id>/``) holds:

- ``image.tif``: the orthomosaic, a georeferenced GeoTIFF in a projected CRS (metres);
- ``dem.tif`` (optional): a DEM covering the image, in any CRS and resolution;
- ``landslides.gpkg`` (optional): hand-drawn landslide polygons, in any CRS.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyogrio
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds
from shapely.geometry import box

from landslide_pipeline.geo.errors import SurveyInputError

IMAGE_NAME = "image.tif"
DEM_NAME = "dem.tif"
LABELS_NAME = "landslides.gpkg"
SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "float32", "float64")


@dataclass(frozen=True)
class SurveyFiles:
    """The files of one survey; ``dem`` and ``labels`` are None when absent."""

    image: Path
    dem: Path | None
    labels: Path | None


@dataclass(frozen=True)
class SurveyMetadata:
    """What the pipeline needs to know about a survey before tiling it."""

    survey_id: str
    crs: str
    width: int
    height: int
    bands: int
    dtype: str
    resolution_m: tuple[float, float]
    bounds: tuple[float, float, float, float]
    has_dem: bool
    dem_crs: str | None
    n_label_polygons: int | None
    labels_crs: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_survey_files(survey_dir: Path) -> SurveyFiles:
    """Locates the survey's files; raises SurveyInputError when the image is missing."""
    survey_dir = Path(survey_dir)
    image = survey_dir / IMAGE_NAME
    if not image.is_file():
        raise SurveyInputError(image, "survey image not found (expected image.tif)")
    dem = survey_dir / DEM_NAME
    labels = survey_dir / LABELS_NAME
    return SurveyFiles(
        image=image,
        dem=dem if dem.is_file() else None,
        labels=labels if labels.is_file() else None,
    )


def inspect_survey(survey_id: str, files: SurveyFiles) -> SurveyMetadata:
    """Reads and validates the survey's metadata without reading pixel data.

    Raises:
        SurveyInputError: unreadable image, no or geographic CRS, unsupported dtype, a DEM that
            does not cover the image, or labels that do not overlap it.
    """
    with _open(files.image) as src:
        if src.crs is None:
            raise SurveyInputError(files.image, "image has no CRS; georeference it first")
        if not src.crs.is_projected:
            raise SurveyInputError(
                files.image, f"image CRS {src.crs} is not projected; reproject to metres (e.g. UTM)"
            )
        dtype = src.dtypes[0]
        if dtype not in SUPPORTED_DTYPES:
            raise SurveyInputError(files.image, f"unsupported dtype {dtype}; use {SUPPORTED_DTYPES}")
        crs, bounds = src.crs, tuple(src.bounds)
        meta = dict(width=src.width, height=src.height, bands=src.count, dtype=dtype,
                    resolution_m=tuple(float(r) for r in src.res))
    dem_crs = _check_dem_covers(files.dem, crs, bounds) if files.dem else None
    n_polygons, labels_crs = _check_labels_overlap(files.labels, crs, bounds) if files.labels else (None, None)
    return SurveyMetadata(
        survey_id=survey_id, crs=crs.to_string(), bounds=bounds, has_dem=files.dem is not None,
        dem_crs=dem_crs, n_label_polygons=n_polygons, labels_crs=labels_crs, **meta,
    )


def survey_fingerprint(files: SurveyFiles, chunk_size: int = 1 << 22) -> str:
    """A SHA-256 over the survey's file contents: its Dagster data version."""
    digest = hashlib.sha256()
    for path in (files.image, files.dem, files.labels):
        if path is None:
            continue
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(chunk_size):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _open(path: Path) -> rasterio.DatasetReader:
    try:
        return rasterio.open(path)
    except RasterioIOError as err:
        raise SurveyInputError(path, f"cannot read raster ({err})") from err


def _check_dem_covers(dem: Path, image_crs: rasterio.crs.CRS, image_bounds: tuple) -> str:
    with _open(dem) as src:
        if src.crs is None:
            raise SurveyInputError(dem, "DEM has no CRS")
        dem_bounds = transform_bounds(src.crs, image_crs, *src.bounds, densify_pts=21)
        dem_crs = src.crs.to_string()
    tolerance = 1e-6 * max(abs(v) for v in image_bounds)
    if not box(*dem_bounds).buffer(tolerance).covers(box(*image_bounds)):
        raise SurveyInputError(dem, f"DEM bounds {dem_bounds} do not cover the image {image_bounds}")
    return dem_crs


def _check_labels_overlap(labels: Path, image_crs: rasterio.crs.CRS, image_bounds: tuple) -> tuple[int, str]:
    try:
        info = pyogrio.read_info(labels)
    except pyogrio.errors.DataSourceError as err:
        raise SurveyInputError(labels, f"cannot read vector labels ({err})") from err
    if info["crs"] is None:
        raise SurveyInputError(labels, "labels have no CRS")
    label_bounds = transform_bounds(info["crs"], image_crs, *info["total_bounds"], densify_pts=21)
    if info["features"] > 0 and not box(*label_bounds).intersects(box(*image_bounds)):
        raise SurveyInputError(labels, "labels do not overlap the image")
    return int(info["features"]), str(info["crs"])
