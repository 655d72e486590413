"""Opening rasters with errors that name the file, and choosing which bands are image bands."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from landslide_pipeline.geo.errors import SurveyInputError

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "float32", "float64")


@contextmanager
def open_raster(path: Path) -> Iterator[rasterio.DatasetReader]:
    """Opens a raster for reading; PNG and JPEG tiles without a georeference open quietly.

    Raises:
        SurveyInputError: the file is missing, corrupt, truncated or not a raster.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path)
    except RasterioIOError as err:
        raise SurveyInputError(path, f"cannot read raster ({err})") from err
    with dataset:
        yield dataset


def check_dtype(path: Path, dtype: str) -> None:
    """Raises SurveyInputError for pixel types the models cannot take."""
    if dtype not in SUPPORTED_DTYPES:
        raise SurveyInputError(path, f"unsupported dtype {dtype}; use one of {SUPPORTED_DTYPES}")


def alpha_band(src: rasterio.DatasetReader) -> int | None:
    """The 1-based index of the alpha band, if the raster has one."""
    for index, interp in enumerate(src.colorinterp, start=1):
        if interp == ColorInterp.alpha:
            return index
    return None


def select_bands(path: Path, count: int, bands: tuple[int, ...] | None, alpha: int | None) -> tuple[int, ...]:
    """The 1-based image bands to keep: ``bands`` if given (checked), else every band but alpha.

    Raises:
        SurveyInputError: a requested band the file does not have.
    """
    if bands is None:
        return tuple(b for b in range(1, count + 1) if b != alpha)
    missing = [b for b in bands if b > count]
    if missing:
        raise SurveyInputError(path, f"has {count} band(s); bands {missing} were asked for")
    return tuple(bands)


def invalid_pixels(pixels: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Pixels that are nodata in every band (NaN counts for float images), or None if none can be.

    Args:
        pixels: (bands, ...) array.
        nodata: The nodata value, or None.
    """
    floating = np.issubdtype(pixels.dtype, np.floating)
    if nodata is None and not floating:
        return None
    if nodata is None or np.isnan(nodata):
        return np.isnan(pixels).all(axis=0)
    missing = (pixels == nodata).all(axis=0)
    return missing | np.isnan(pixels).all(axis=0) if floating else missing
