"""The one way the pipeline reads a scene: tiling, mapping and object-oriented labelling all use it.

A scene is an image GeoTIFF (or several adjacent crops, joined by a virtual mosaic) and an
optional DEM, with the survey's band selection and nodata override (``SceneFiles``). A
``SceneReader`` opens them for a ``with`` block and reads any window:

- **bands**: the selected 1-based bands, by default every band but an alpha band;
- **nodata precedence**: the override (survey.toml ``nodata``) > an alpha band that is not an
  image band > the image's nodata value (NaN counts for float images) > GDAL's per-dataset mask.
  A pixel is nodata when every image band holds the nodata value, or when any band of float
  imagery is NaN or infinite;
- **block-aligned reads**: ``read_raw`` fills a caller's buffer, so tiling can read each block of
  the file once; errors of GDAL become ``SurveyInputError`` naming the file and the rows;
- **DEM on the image grid**: elevation resampled (bilinear) onto any window with a margin, and
  terrain bands computed from it (``geo.terrain``);
- **a size cap** (``SceneFiles.max_pixels``, ``MAX_SCENE_PIXELS`` by default): a larger scene is
  refused on opening, before a pixel is read, since a small sparse file can declare any size;
- **one GDAL block cache** (``GDAL_CACHE_MB``): windows are read once, so the cache only serves
  mosaics and DEMs;
- **band names and dtype scaling**: ``band_names`` from descriptions and colour interpretation,
  and ``dtype_range``, the value of full brightness (an integer dtype's maximum, 1.0 for floats),
  by which model inputs and object-oriented labelling both scale the image.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.mosaic import open_scene
from landslide_pipeline.geo.rasters import (
    alpha_band,
    band_descriptions,
    check_dtype,
    invalid_pixels,
    open_raster,
    select_bands,
)
from landslide_pipeline.geo.terrain import dem_on_grid, pixel_size_m, terrain_bands, terrain_margin

#: GDAL's block cache (MB) while a scene is open.
GDAL_CACHE_MB = 128
#: The largest scene a ``SceneReader`` opens, in pixels: a 44,721 px square, 6 GB of RGB bytes.
MAX_SCENE_PIXELS = 2_000_000_000
_COLOURS = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}
_KNOWN_BANDS = ("red", "green", "blue", "nir")


@dataclass(frozen=True)
class SceneFiles:
    """The files and read options of one scene: what geo functions take instead of a survey.

    Attributes:
        images: The image GeoTIFF, or the adjacent crops to mosaic into one scene.
        dem: The DEM (any CRS and resolution covering the image), or None.
        bands: 1-based image bands to read; None reads every band but alpha.
        nodata: Overrides the image's nodata value.
        max_pixels: Scenes with more pixels (width x height) are refused when opened.
    """

    images: tuple[Path, ...]
    dem: Path | None = None
    bands: tuple[int, ...] | None = None
    nodata: float | None = None
    max_pixels: int = MAX_SCENE_PIXELS

    @property
    def name(self) -> Path:
        """What errors name: the image, or the folder of a mosaic's crops."""
        return self.images[0] if len(self.images) == 1 else self.images[0].parent


@dataclass(frozen=True)
class Validity:
    """How a scene marks missing pixels: a nodata value, an alpha band, or a per-dataset mask."""

    nodata: float | None
    alpha: int | None
    dataset_mask: bool


class SceneReader:
    """A scene opened for reading windows (use as a context manager).

    Attributes (set on entering):
        height, width, crs, transform, dtype: The scene's grid and pixel type.
        bands: The 1-based image bands read.
        descriptions: Those bands' descriptions (None where unset).
        colorinterp: Those bands' colour interpretations.
        validity: How missing pixels are marked.
        indexes: What ``read_raw`` reads: the image bands, then the alpha band when it marks nodata.
        has_dem: Whether a DEM is open.
    """

    def __init__(self, files: SceneFiles) -> None:
        self.files = files
        self.name = files.name
        self._stack = ExitStack()

    def __enter__(self) -> SceneReader:
        try:
            self._stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
            self.image = self._stack.enter_context(open_scene(self.files.images))
            _check_scene_size(self.files, self.image.height, self.image.width)
            self.dem = self._stack.enter_context(open_raster(self.files.dem)) if self.files.dem else None
            self._describe(self.image)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _describe(self, image: rasterio.DatasetReader) -> None:
        check_dtype(self.name, image.dtypes[0])
        self.height, self.width, self.crs, self.transform = image.height, image.width, image.crs, image.transform
        self.dtype: str = image.dtypes[0]
        alpha = alpha_band(image)
        self.bands = select_bands(self.name, image.count, self.files.bands, alpha)
        # open_raster drops band descriptions; a mosaic has none.
        descriptions = band_descriptions(self.files.images[0]) if len(self.files.images) == 1 else image.descriptions
        self.descriptions = tuple(descriptions[b - 1] for b in self.bands)
        self.colorinterp: tuple[ColorInterp, ...] = tuple(image.colorinterp[b - 1] for b in self.bands)
        self.validity = _validity(image, self.bands, alpha, self.files.nodata)
        self.indexes = list(self.bands) + ([self.validity.alpha] if self.validity.alpha else [])
        self.has_dem = self.dem is not None

    @property
    def band_names(self) -> tuple[str, ...]:
        """The image bands' names (``band_names``)."""
        return band_names(list(self.descriptions), list(self.colorinterp))

    def read_raw(self, window: Window, out: np.ndarray | None = None) -> np.ndarray:
        """``indexes`` over ``window``: (len(indexes), h, w), into ``out`` when given.

        Raises:
            SurveyInputError: GDAL cannot read the pixels (corrupt or truncated file).
        """
        try:
            return self.image.read(self.indexes, window=window, out=out)
        except RasterioIOError as err:
            detail = err.__cause__ or err  # GDAL's own message: which file, band and block failed
            raise SurveyInputError(self.name, f"cannot read pixels in rows {window.row_off}.."
                                              f"{window.row_off + window.height}; corrupt or truncated? "
                                              f"({detail})") from err

    def split(self, raw: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray | None]:
        """Image bands and nodata pixels (None when the scene marks none) of ``read_raw``'s pixels."""
        n_bands = len(self.bands)
        if self.validity.alpha:
            return raw[:n_bands], raw[-1] == 0
        if self.validity.dataset_mask:
            return raw, self.image.dataset_mask(window=window) == 0
        return raw, invalid_pixels(raw, self.validity.nodata)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray | None]:
        """Image bands (bands, h, w) of ``window`` and its nodata pixels (None when none can be)."""
        return self.split(self.read_raw(window), window)

    def pixel_size_m(self, row: float, col: float) -> tuple[float, float]:
        """Pixel width and height in metres at a pixel (map units when the scene has no CRS)."""
        if self.crs is None:
            return abs(self.transform.a), abs(self.transform.e)
        return pixel_size_m(self.crs, self.transform, row, col)

    def elevation(self, row: int, col: int, height: int, width: int, margin: int = 1) -> np.ndarray:
        """DEM elevation (m) resampled onto the window's grid, ``margin`` px wider on each side.

        Raises:
            SurveyInputError: the scene has no DEM, or no CRS to place one on.
        """
        if self.dem is None:
            raise SurveyInputError(self.name, "the scene has no DEM")
        if self.crs is None:
            raise SurveyInputError(self.name, "has no CRS, so the DEM cannot be placed on it")
        origin = self.transform @ Affine.translation(col, row)
        return dem_on_grid(self.dem, origin, (height, width), self.crs, margin)

    def terrain(self, row: int, col: int, height: int, width: int, names: tuple[str, ...],
                relief_radius_m: float) -> np.ndarray:
        """Terrain bands ``names`` (float32, (len(names), height, width)) over a window."""
        res_m = self.pixel_size_m(row + height / 2, col + width / 2)
        margin = terrain_margin(names, res_m, relief_radius_m)
        elevation = self.elevation(row, col, height, width, margin)
        return terrain_bands(elevation, res_m, margin, names, relief_radius_m)


def _check_scene_size(files: SceneFiles, height: int, width: int) -> None:
    """Refuses a scene of more than ``files.max_pixels`` pixels.

    Raises:
        SurveyInputError: naming the scene, its size, the cap and how to raise it.
    """
    pixels = height * width
    if pixels > files.max_pixels:
        raise SurveyInputError(files.name, f"scene of {width:,} x {height:,} px ({pixels:,} pixels) is above the cap "
                                           f"of {files.max_pixels:,} pixels; if it is meant to be this large, raise "
                                           "the cap (SceneFiles.max_pixels, or tile_scene's max_scene_pixels)")


def _validity(image: rasterio.DatasetReader, bands: tuple[int, ...], alpha: int | None,
              nodata: float | None) -> Validity:
    """Nodata precedence: override > alpha (not an image band) > nodata value > per-dataset mask."""
    nodata = nodata if nodata is not None else image.nodata
    use_alpha = alpha if nodata is None and alpha is not None and alpha not in bands else None
    flags = image.mask_flag_enums[0]
    per_dataset = MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags
    return Validity(nodata=nodata, alpha=use_alpha, dataset_mask=nodata is None and use_alpha is None and per_dataset)


def dtype_range(dtype: np.dtype | str) -> float:
    """The pixel value of full brightness: an integer dtype's maximum; floats are taken as 0..1."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def band_names(descriptions: list[str | None], colours: list[ColorInterp | None]) -> tuple[str, ...]:
    """Band names: a known description (red, green, blue, nir), else the colour interpretation,
    else RGB by position for three bands, else ``band_<i>``."""
    names = []
    for i, (text, colour) in enumerate(zip(descriptions, colours)):
        text = (text or "").strip().lower()
        if text in _KNOWN_BANDS:
            names.append(text)
        elif colour in _COLOURS:
            names.append(_COLOURS[colour])
        elif len(descriptions) == 3:
            names.append(("red", "green", "blue")[i])
        else:
            names.append(f"band_{i + 1}")
    if len(set(names)) != len(names):
        return tuple(f"band_{i + 1}" for i in range(len(names)))
    return tuple(names)
