"""Finding and validating the files of one survey folder.

A survey folder (``data/raw/<survey_id>/``) holds, by convention:

- ``image.tif``: the orthomosaic, a GeoTIFF of any band count (uint8, uint16, int16 or float);
- ``dem.tif`` (optional): a DEM covering the image, in any CRS and resolution;
- ``landslides.gpkg`` (optional; or ``.geojson``, ``.shp``, Labelme ``.json``): landslide polygons.

An optional ``survey.toml`` (see ``geo.config``) names other files, mosaics several crops into
one scene, or points at a pre-cut tile data set elsewhere (kind "tiles").
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyogrio
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box

from landslide_pipeline.datasets.adapter import DatasetAdapter, resolve_adapter
from landslide_pipeline.datasets.precut import find_pairs, inspect_dataset, natural_key
from landslide_pipeline.geo.config import DEFAULT_DEM, DEFAULT_LABELS, LabelsConfig, SurveyConfig, load_survey_config
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.labelme import is_labelme, read_labelme
from landslide_pipeline.geo.mosaic import open_scene
from landslide_pipeline.geo.rasters import alpha_band, check_dtype, open_raster, select_bands
from landslide_pipeline.geo.terrain import pixel_size_m
from landslide_pipeline.layout import validate_survey_id

IMAGE_NAME = "image.tif"
DEM_NAME = DEFAULT_DEM
LABELS_NAME = DEFAULT_LABELS[0]
_LABEL_SUFFIXES = {".gpkg": "gpkg", ".geojson": "geojson", ".shp": "shapefile"}


@dataclass(frozen=True)
class SurveyFiles:
    """A survey's inputs, resolved to files.

    Attributes:
        config: The survey's config (defaults when it has no survey.toml).
        images: The scene image, or the crops to mosaic into it; empty for a tile data set.
        dem: The DEM, or None.
        labels: The label file, or None.
        labels_format: "gpkg", "geojson", "shapefile" or "labelme" (None without labels).
        adapter: The tile data set's adapter (kind "tiles").
    """

    config: SurveyConfig
    images: tuple[Path, ...] = ()
    dem: Path | None = None
    labels: Path | None = None
    labels_format: str | None = None
    adapter: DatasetAdapter | None = None

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def image(self) -> Path:
        """The scene image (the first crop of a mosaic)."""
        return self.images[0]

    def all_files(self) -> list[Path]:
        """Every input file, the config included: what the survey's data version hashes."""
        files = [self.config.config_file, *self.images, self.dem, *_with_sidecars(self.labels)]
        if self.adapter is not None:
            for pair in find_pairs(self.config.source, self.adapter):
                files += [pair.image, pair.mask]
        return [f for f in files if f is not None]


@dataclass(frozen=True)
class SurveyMetadata:
    """What the pipeline needs to know about a survey before tiling it.

    Scene fields (crs, width, height, resolution_m, bounds) are None for a tile data set, whose
    ``n_images`` counts its tiles; for a scene it counts the files mosaicked into it.
    """

    survey_id: str
    kind: str
    site: str | None
    role: str
    date: str | None
    crs: str | None
    width: int | None
    height: int | None
    bands: int
    dtype: str
    resolution_m: tuple[float, float] | None
    bounds: tuple[float, float, float, float] | None
    has_dem: bool
    dem_crs: str | None
    n_label_polygons: int | None
    labels_crs: str | None
    labels_format: str | None
    n_images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_survey_files(survey_dir: Path) -> SurveyFiles:
    """Locates the survey's files, honouring its survey.toml.

    Raises:
        SurveyInputError: a missing image, DEM, label file or data set, or an invalid config.
    """
    config = load_survey_config(Path(survey_dir))
    if config.kind == "tiles":
        return SurveyFiles(config=config, adapter=resolve_adapter(config.adapter, config.config_file))
    images = _find_images(config)
    dem = _named_file(config, config.dem, "DEM") if config.dem else _optional(config.source / DEM_NAME)
    labels, labels_format = _find_labels(config)
    return SurveyFiles(config=config, images=images, dem=dem, labels=labels, labels_format=labels_format)


def inspect_survey(survey_id: str, files: SurveyFiles) -> SurveyMetadata:
    """Reads and validates the survey's metadata without reading pixel data.

    Raises:
        InvalidSurveyIdError: the id has path separators, ``..`` or a leading dot.
        SurveyInputError: unreadable files, an unsupported dtype, a rotated image, crops that do
            not mosaic, an image without CRS but with a DEM or georeferenced labels, a DEM that
            does not cover the image, labels that do not overlap it, or tiles whose masks do not fit.
    """
    validate_survey_id(survey_id)
    common = dict(survey_id=survey_id, kind=files.kind, site=files.config.site, role=files.config.role,
                  date=files.config.date)
    if files.kind == "tiles":
        summary = inspect_dataset(files.config.source, files.adapter)
        return SurveyMetadata(**common, crs=None, width=None, height=None, bands=summary.bands, dtype=summary.dtype,
                              resolution_m=None, bounds=None, has_dem=False, dem_crs=None, n_label_polygons=None,
                              labels_crs=None, labels_format="mask" if summary.labelled else None,
                              n_images=summary.n_tiles)
    with open_scene(files.images) as src:
        check_dtype(files.image, src.dtypes[0])
        bands = select_bands(files.image, src.count, files.config.bands, alpha_band(src))
        crs, bounds, transform = src.crs, tuple(src.bounds), src.transform
        scene = dict(width=src.width, height=src.height, bands=len(bands), dtype=src.dtypes[0])
    if transform.b or transform.d:
        raise SurveyInputError(files.image, "image is rotated; warp it north-up (e.g. gdalwarp) first")
    _check_georeference(files, crs)
    dem_crs = _check_dem_covers(files.dem, crs, bounds) if files.dem else None
    n_polygons, labels_crs = _check_labels(files, crs, bounds, (scene["height"], scene["width"]))
    resolution = pixel_size_m(crs, transform, scene["height"] / 2, scene["width"] / 2) if crs else None
    return SurveyMetadata(
        **common, **scene, crs=crs.to_string() if crs else None, bounds=bounds, resolution_m=resolution,
        has_dem=files.dem is not None, dem_crs=dem_crs, n_label_polygons=n_polygons, labels_crs=labels_crs,
        labels_format=files.labels_format, n_images=len(files.images),
    )


def survey_fingerprint(files: SurveyFiles, chunk_size: int = 1 << 22) -> str:
    """A SHA-256 over the survey's file contents: its Dagster data version."""
    digest = hashlib.sha256()
    for path in files.all_files():
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(chunk_size):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _find_images(config: SurveyConfig) -> tuple[Path, ...]:
    images: list[Path] = []
    for pattern in config.image:
        if glob.has_magic(pattern):
            found = [Path(p) for p in glob.glob(str(config.source / pattern)) if Path(p).is_file()]
            if not found:
                raise SurveyInputError(config.source / pattern, "no image matches this pattern")
            images += sorted(found, key=lambda p: natural_key(p.name))
        else:
            images.append(_named_file(config, pattern, "survey image"))
    return tuple(dict.fromkeys(images))


def _named_file(config: SurveyConfig, name: str, what: str) -> Path:
    path = config.source / name
    if not path.is_file():
        hint = f" (expected {name})" if config.config_file is None else f" (named in {config.config_file})"
        raise SurveyInputError(path, f"{what} not found{hint}")
    return path


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def _find_labels(config: SurveyConfig) -> tuple[Path | None, str | None]:
    if config.labels is not None:
        path = _named_file(config, config.labels.path, "label file")
        return path, _label_format(path, config.labels.format)
    for name in DEFAULT_LABELS:
        path = config.source / name
        if path.is_file():
            return path, _label_format(path, "auto")
    return None, None


def _label_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "labelme" if is_labelme(path) else "geojson"
    if suffix not in _LABEL_SUFFIXES:
        raise SurveyInputError(path, f"unknown label format {suffix!r}; use .gpkg, .geojson, .shp, Labelme .json "
                                     "or set [labels] format")
    return _LABEL_SUFFIXES[suffix]


def _with_sidecars(labels: Path | None) -> list[Path]:
    if labels is None:
        return []
    if labels.suffix.lower() != ".shp":
        return [labels]
    return sorted(p for p in labels.parent.glob(f"{glob.escape(labels.stem)}.*") if p.is_file())


def _check_georeference(files: SurveyFiles, crs: rasterio.crs.CRS | None) -> None:
    if crs is not None:
        return
    if files.dem is not None:
        raise SurveyInputError(files.image, "image has no CRS, so the DEM cannot be placed on it; georeference it")
    if files.labels is not None and files.labels_format != "labelme":
        labels_crs = _vector_info(files.labels, files.config.labels)["crs"]
        raise SurveyInputError(files.image, f"image has no CRS but its labels {files.labels.name} are in "
                                            f"{labels_crs or 'map coordinates'}; georeference the image "
                                            "or draw the labels in Labelme (pixel coordinates)")


def _check_dem_covers(dem: Path, image_crs: rasterio.crs.CRS, image_bounds: tuple) -> str:
    with open_raster(dem) as src:
        if src.crs is None:
            raise SurveyInputError(dem, "DEM has no CRS")
        dem_bounds = transform_bounds(src.crs, image_crs, *src.bounds, densify_pts=21)
        dem_crs = src.crs.to_string()
    tolerance = 1e-6 * max(abs(v) for v in image_bounds)
    if not box(*dem_bounds).buffer(tolerance).covers(box(*image_bounds)):
        raise SurveyInputError(dem, f"DEM bounds {dem_bounds} do not cover the image {image_bounds}")
    return dem_crs


def _check_labels(files: SurveyFiles, crs: rasterio.crs.CRS | None, bounds: tuple,
                  shape: tuple[int, int]) -> tuple[int | None, str | None]:
    if files.labels is None:
        return None, None
    if files.labels_format == "labelme":
        return _check_labelme(files, shape), None
    info = _vector_info(files.labels, files.config.labels)
    if info["crs"] is None:
        raise SurveyInputError(files.labels, "labels have no CRS")
    label_bounds = transform_bounds(info["crs"], crs, *info["total_bounds"], densify_pts=21)
    if info["features"] > 0 and not box(*label_bounds).intersects(box(*bounds)):
        raise SurveyInputError(files.labels, "labels do not overlap the image")
    return int(info["features"]), str(info["crs"])


def _vector_info(path: Path, labels_config: LabelsConfig | None) -> dict:
    layer = labels_config.layer if labels_config is not None else None
    try:
        return pyogrio.read_info(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        raise SurveyInputError(path, f"cannot read vector labels ({err})") from err


def _check_labelme(files: SurveyFiles, shape: tuple[int, int]) -> int:
    names = files.config.labels.names if files.config.labels else ("landslide",)
    document = read_labelme(files.labels, names)
    if (document.height, document.width) != shape:
        raise SurveyInputError(files.labels, f"Labelme image is {document.height}x{document.width} px but the "
                                             f"survey image is {shape[0]}x{shape[1]} px")
    inside = box(0, 0, shape[1], shape[0])
    if document.shapes and not any(box(*s.bounds).intersects(inside) for s in document.shapes):
        raise SurveyInputError(files.labels, "labels do not overlap the image")
    return len(document.shapes)
