"""A scene survey: an orthomosaic (or crops to mosaic), an optional DEM and optional labels.

A scene survey folder (``data/raw/<survey_id>/``) holds, by convention (``layout``):

- ``image.tif``: the orthomosaic, a GeoTIFF of any band count (uint8, uint16, int16 or float);
- ``dem.tif`` (optional): a DEM covering the image, in any CRS and resolution;
- ``landslides.gpkg`` (optional; or ``.geojson``, ``.shp``, Labelme ``.json``): landslide polygons.

An optional ``survey.toml`` (see ``surveys.config``) names other files or mosaics several crops into
one scene. Reading pixels is ``geo.scene``'s; this module finds the files and checks that they
fit together before anything is tiled.
"""

from __future__ import annotations

import glob
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from shapely.geometry import box

from landslide_pipeline.datasets.precut import natural_key
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.geo.labelme import json_label_format, read_labelme
from landslide_pipeline.geo.labels import LabelFile, label_scene_tiles, read_label_polygons, vector_info
from landslide_pipeline.geo.mosaic import open_scene
from landslide_pipeline.geo.rasters import alpha_band, check_dtype, open_raster, select_bands
from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.geo.terrain import TerrainSpec, pixel_size_m
from landslide_pipeline.geo.tiling import tile_scene
from landslide_pipeline.layout import RAW_DEM, RAW_LABELS
from landslide_pipeline.progress import Progress, no_progress
from landslide_pipeline.surveys.base import SurveyMetadata
from landslide_pipeline.surveys.config import SurveyConfig, check_nodata, confined

_LABEL_SUFFIXES = {".gpkg": "gpkg", ".geojson": "geojson", ".shp": "shapefile"}
#: The longest side of the decimated DEM read that tells how much of the image has elevation.
_DEM_SAMPLE_PX = 64
#: Below this share of the image with elevation, ``inspect`` warns: terrain bands are NaN elsewhere.
DEM_MIN_VALID_SHARE = 0.5


@dataclass(frozen=True)
class SceneSurvey:
    """A survey with a scene: it can be tiled, labelled from polygons, segmented and mapped.

    Attributes:
        survey_id: The survey's id.
        config: Its survey.toml (defaults when it has none).
        scene: The image (or crops), the DEM, and the band selection and nodata override.
        labels: The label file, or None.
    """

    survey_id: str
    config: SurveyConfig
    scene: SceneFiles
    labels: LabelFile | None = None
    kind: ClassVar[str] = "scene"

    @classmethod
    def from_config(cls, survey_id: str, config: SurveyConfig) -> SceneSurvey:
        """Locates the scene's files, honouring the survey.toml.

        Raises:
            SurveyInputError: a missing image, DEM or label file.
        """
        dem = _named_file(config, config.dem, "DEM") if config.dem else _optional(config.source / RAW_DEM)
        scene = SceneFiles(_find_images(config), dem, config.bands, config.nodata)
        return cls(survey_id, config, scene, _find_labels(config))

    @property
    def has_labels(self) -> bool:
        """Whether the survey has a label file."""
        return self.labels is not None

    @property
    def can_map(self) -> bool:
        """Always: the survey has a scene."""
        return True

    @property
    def terrain(self) -> TerrainSpec:
        """The terrain bands its tiles get from the DEM."""
        return TerrainSpec(self.config.terrain_bands, self.config.relief_radius_m)

    def label_files(self) -> list[Path]:
        """The label file with its sidecars."""
        return _with_sidecars(self.labels.path) if self.labels is not None else []

    def files(self) -> list[Path]:
        """survey.toml, the image(s), the DEM and the label file with its sidecars."""
        files = [self.config.config_file, *self.scene.images, self.scene.dem, *self.label_files()]
        return [f for f in files if f is not None]

    def inspect(self) -> SurveyMetadata:
        """Reads and validates the survey's metadata without reading the image's pixels.

        Besides the headers it reads a decimated sample of the DEM (has it elevation over the
        image?) and the label polygons (do they make geometries?), both cheap beside tiling.

        Raises:
            SurveyInputError: unreadable files, an unsupported dtype, a survey.toml ``nodata``
                that no pixel of the image's dtype can hold, a rotated image, crops that do not
                mosaic, an image without CRS but with a DEM or georeferenced labels, a DEM that
                does not cover the image or holds no elevation over it, labels that are malformed
                or do not overlap the image.

        Warns:
            UserWarning: the DEM has elevation over less than ``DEM_MIN_VALID_SHARE`` of the image.
        """
        scene, config = self.scene, self.config
        with open_scene(scene.images) as src:
            check_dtype(scene.name, src.dtypes[0])
            check_nodata(config, src.dtypes[0])
            bands = select_bands(scene.name, src.count, scene.bands, alpha_band(src))
            crs, bounds, transform = src.crs, tuple(src.bounds), src.transform
            height, width, dtype = src.height, src.width, src.dtypes[0]
        if transform.b or transform.d:
            raise SurveyInputError(scene.images[0], "image is rotated; warp it north-up (e.g. gdalwarp) first")
        self._check_georeference(crs)
        dem_crs = _check_dem_covers(scene.dem, crs, bounds) if scene.dem else None
        n_polygons, labels_crs = self._check_labels(crs, bounds, (height, width))
        return SurveyMetadata(
            survey_id=self.survey_id, kind=self.kind, site=config.site, role=config.role, date=config.date,
            crs=crs.to_string() if crs else None, width=width, height=height, bands=len(bands), dtype=dtype,
            resolution_m=pixel_size_m(crs, transform, height / 2, width / 2) if crs else None, bounds=bounds,
            has_dem=scene.dem is not None, dem_crs=dem_crs, n_label_polygons=n_polygons, labels_crs=labels_crs,
            labels_format=self.labels.format if self.labels else None, n_images=len(scene.images))

    def tile(self, out_dir: Path, spec: TilingSpec, progress: Progress = no_progress) -> gpd.GeoDataFrame:
        """Cuts the scene (``geo.tiling.tile_scene``), with terrain tiles when it has a DEM."""
        return tile_scene(self.survey_id, self.scene, out_dir, spec, self.terrain, progress=progress)

    def label(self, tile_index: gpd.GeoDataFrame, out_dir: Path) -> gpd.GeoDataFrame:
        """Rasterizes the label file on every tile's grid.

        Raises:
            SurveyInputError: the survey has no labels, or they cannot be read.
        """
        if self.labels is None:
            raise SurveyInputError(self.config.source, "the survey has no labels")
        return label_scene_tiles(self.scene.images, self.labels, tile_index, out_dir)

    def _check_georeference(self, crs: rasterio.crs.CRS | None) -> None:
        if crs is not None:
            return
        image = self.scene.images[0]
        if self.scene.dem is not None:
            raise SurveyInputError(image, "image has no CRS, so the DEM cannot be placed on it; georeference it")
        if self.labels is not None and self.labels.format != "labelme":
            labels_crs = vector_info(self.labels.path, self.labels.layer)["crs"]
            raise SurveyInputError(image, f"image has no CRS but its labels {self.labels.path.name} are in "
                                          f"{labels_crs or 'map coordinates'}; georeference the image "
                                          "or draw the labels in Labelme (pixel coordinates)")

    def _check_labels(self, crs: rasterio.crs.CRS | None, bounds: tuple,
                      shape: tuple[int, int]) -> tuple[int | None, str | None]:
        if self.labels is None:
            return None, None
        if self.labels.format == "labelme":
            return _check_labelme(self.labels, shape), None
        polygons = read_label_polygons(self.labels.path, None, self.labels.layer)
        labels_crs = polygons.crs.to_string()
        if not polygons.empty and not box(*polygons.to_crs(crs).total_bounds).intersects(box(*bounds)):
            raise SurveyInputError(self.labels.path, "labels do not overlap the image")
        return len(polygons), labels_crs


def _find_images(config: SurveyConfig) -> tuple[Path, ...]:
    images: list[Path] = []
    for pattern in config.image:
        if glob.has_magic(pattern):
            found = [Path(p) for p in glob.glob(str(config.source / pattern)) if Path(p).is_file()]
            if not found:
                raise SurveyInputError(config.source / pattern, "no image matches this pattern")
            images += sorted((confined(p, config.config_file) for p in found), key=lambda p: natural_key(p.name))
        else:
            images.append(_named_file(config, pattern, "survey image"))
    return tuple(dict.fromkeys(images))


def _named_file(config: SurveyConfig, name: str, what: str) -> Path:
    path = config.source / name
    if not path.is_file():
        hint = f" (expected {name})" if config.config_file is None else f" (named in {config.config_file})"
        raise SurveyInputError(path, f"{what} not found{hint}")
    return confined(path, config.config_file)


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def _find_labels(config: SurveyConfig) -> LabelFile | None:
    settings = config.labels
    if settings is not None:
        path = _named_file(config, settings.path, "label file")
        return LabelFile(path, _label_format(path, settings.format), settings.layer, settings.names)
    for name in RAW_LABELS:
        path = config.source / name
        if path.is_file():
            return LabelFile(path, _label_format(path, "auto"))
    return None


def _label_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix == ".json":
        return json_label_format(path)
    if suffix not in _LABEL_SUFFIXES:
        raise SurveyInputError(path, f"unknown label format {suffix!r}; use .gpkg, .geojson, .shp, Labelme .json "
                                     "or set [labels] format")
    return _LABEL_SUFFIXES[suffix]


def _with_sidecars(labels: Path) -> list[Path]:
    if labels.suffix.lower() != ".shp":
        return [labels]
    return sorted(p for p in labels.parent.glob(f"{glob.escape(labels.stem)}.*") if p.is_file())


def _check_dem_covers(dem: Path, image_crs: rasterio.crs.CRS, image_bounds: tuple) -> str:
    with open_raster(dem) as src:
        if src.crs is None:
            raise SurveyInputError(dem, "DEM has no CRS")
        dem_bounds = transform_bounds(src.crs, image_crs, *src.bounds, densify_pts=21)
        tolerance = 1e-6 * max(abs(v) for v in image_bounds)
        if not box(*dem_bounds).buffer(tolerance).covers(box(*image_bounds)):
            raise SurveyInputError(dem, f"DEM bounds {dem_bounds} do not cover the image {image_bounds}")
        _check_dem_data(dem, src, image_crs, image_bounds)
        return src.crs.to_string()


def _check_dem_data(dem: Path, src: rasterio.DatasetReader, image_crs: rasterio.crs.CRS, image_bounds: tuple) -> None:
    """Refuses a DEM without elevation over the image; warns when it has elevation over less than half."""
    share = _dem_valid_share(src, image_crs, image_bounds)
    if share == 0.0:
        marker = "NaN" if src.nodata is None else f"nodata ({src.nodata:g}) or NaN"
        raise SurveyInputError(dem, f"DEM holds no elevation over the image: every pixel there is {marker}; check "
                                    "its nodata value, or remove the DEM")
    if share < DEM_MIN_VALID_SHARE:
        # A DEM with holes over water can be right, so this is no error; but terrain bands are
        # NaN in the holes, where the models see the band's mean.
        warnings.warn(f"{dem}: DEM holds elevation over only {share:.0%} of the image; its terrain bands are NaN "
                      "elsewhere", UserWarning, stacklevel=4)


def _dem_valid_share(src: rasterio.DatasetReader, image_crs: rasterio.crs.CRS, image_bounds: tuple) -> float:
    """Share of DEM pixels with elevation within the image's bounds, from a decimated read."""
    window = from_bounds(*transform_bounds(image_crs, src.crs, *image_bounds, densify_pts=21), src.transform)
    col0, row0 = max(0, math.floor(window.col_off)), max(0, math.floor(window.row_off))
    col1 = min(src.width, math.ceil(window.col_off + window.width))
    row1 = min(src.height, math.ceil(window.row_off + window.height))
    shape = (max(1, min(_DEM_SAMPLE_PX, row1 - row0)), max(1, min(_DEM_SAMPLE_PX, col1 - col0)))
    sample = src.read(1, window=Window(col0, row0, col1 - col0, row1 - row0), out_shape=shape, masked=True)
    return float((~np.ma.getmaskarray(sample) & np.isfinite(sample.data)).mean())


def _check_labelme(labels: LabelFile, shape: tuple[int, int]) -> int:
    document = read_labelme(labels.path, labels.names)
    if (document.height, document.width) != shape:
        raise SurveyInputError(labels.path, f"Labelme image is {document.height}x{document.width} px but the "
                                            f"survey image is {shape[0]}x{shape[1]} px")
    inside = box(0, 0, shape[1], shape[0])
    if document.shapes and not any(box(*s.bounds).intersects(inside) for s in document.shapes):
        raise SurveyInputError(labels.path, "labels do not overlap the image")
    return len(document.shapes)
