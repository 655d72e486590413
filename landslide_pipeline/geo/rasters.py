"""Opening user rasters safely, with errors that name the file, and choosing which bands are image bands.

User rasters (survey images, DEMs, pre-cut tiles) may be hostile: a ``.tif`` can hold VRT XML
that reads other files or URLs, and a GeoTIFF's metadata or a ``.ovr`` beside it can point its
overviews at any file. So ``open_raster``:

- opens local files only: paths starting with ``/vsi`` or holding ``://`` are refused;
- picks the one GDAL driver (GTiff, PNG or JPEG) from the file's first bytes and passes only that
  driver, so GDAL never probes VRT or any other format; anything else is refused, saying what
  the file holds (HDF5 tiles are read with h5py, ``datasets.readers``);
- opens with ``OVERVIEW_LEVEL=NONE``, so GDAL never opens overviews, internal or external:
  decimated reads are computed from the full-resolution pixels of the file itself.

GDAL has no single switch that turns its network access off. ``GDAL_SAFETY_OPTIONS``, set as
environment variables for the whole process when this module is imported (so every thread and
every GDAL in the process, pyogrio's included, sees them), comes closest: it makes every
curl-based file system (``/vsicurl/``, ``/vsicurl_streaming/``, ``/vsis3/``, ``/vsigs/``,
``/vsiaz/``...) refuse to open anything (checked with rasterio's GDAL 3.10 and pyogrio's 3.12,
``test_safe_opening``). Drivers that fetch URLs themselves (WMS, WCS, OGR's
GeoJSON from ``http://``) are not covered by it: for rasters, the driver allow-list and the
``/vsi`` and ``://`` refusal are the guard.
"""

from __future__ import annotations

import os
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
#: The GDAL drivers that open user rasters, chosen by the file's first bytes.
ALLOWED_DRIVERS = ("GTiff", "PNG", "JPEG")
_SIGNATURES = ((b"II*\x00", "GTiff"), (b"MM\x00*", "GTiff"), (b"II+\x00", "GTiff"), (b"MM\x00+", "GTiff"),
               (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))
_OTHER_FORMATS = ((b"\x89hdf\r\n\x1a\n", "HDF5"), (b"cdf\x01", "netCDF"), (b"cdf\x02", "netCDF"),
                  (b"<", "XML or HTML"))
_HEADER_BYTES = 1024

#: GDAL configuration for the whole process (see the module docstring), set on import.
GDAL_SAFETY_OPTIONS = {
    # Curl-based file systems open only this one name, which no /vsi... path can be.
    "CPL_VSIL_CURL_ALLOWED_FILENAME": "network-access-disabled-by-landslide-pipeline",
    # Whatever still reaches the network gives up quickly instead of hanging a run.
    "GDAL_HTTP_CONNECTTIMEOUT": "5",
    "GDAL_HTTP_TIMEOUT": "10",
    "GDAL_HTTP_MAX_RETRY": "0",
    # No code or raw file access from VRT XML; the pipeline's own mosaics use neither.
    "GDAL_VRT_ENABLE_PYTHON": "NO",
    "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",  # honoured from GDAL 3.12 on
}


def apply_gdal_safety_options() -> None:
    """Sets ``GDAL_SAFETY_OPTIONS`` as environment variables, overriding any earlier values.

    Environment variables rather than ``rasterio.Env``: GDAL reads them in every thread (tiling
    reads on background threads) and for every library that bundles its own GDAL.
    """
    os.environ.update(GDAL_SAFETY_OPTIONS)


apply_gdal_safety_options()


@contextmanager
def open_raster(path: Path) -> Iterator[rasterio.DatasetReader]:
    """Opens a user raster (GeoTIFF, PNG or JPEG) for reading, without overviews.

    PNG and JPEG tiles without a georeference open quietly. Band descriptions are not available
    through the dataset (GDAL drops them when overviews are off): use ``band_descriptions``.

    Raises:
        SurveyInputError: a remote or virtual path, a file that is missing, corrupt, truncated,
            not a raster, or in a format other than GeoTIFF, PNG and JPEG.
    """
    with _open(path, OVERVIEW_LEVEL="NONE") as dataset:
        yield dataset


def band_descriptions(path: Path) -> tuple[str | None, ...]:
    """The band descriptions of a user raster, read from its header only.

    Raises:
        SurveyInputError: as ``open_raster``.
    """
    # Opened with overviews, but nothing here reads pixels or asks for overviews, so none are opened.
    with _open(path) as dataset:
        return tuple(dataset.descriptions)


def raster_driver(path: Path) -> str:
    """The one GDAL driver that may open a user raster, from its first bytes.

    Raises:
        SurveyInputError: a remote or virtual path, an unreadable file, or another format.
    """
    text = os.fspath(path)
    if "://" in text or os.path.abspath(text).startswith("/vsi"):
        raise SurveyInputError(path, "cannot read raster: only local files are read, not URLs or GDAL /vsi paths")
    try:
        with open(text, "rb") as file:
            header = file.read(_HEADER_BYTES)
    except OSError as err:
        raise SurveyInputError(path, f"cannot read raster ({err.strerror})") from err
    for signature, driver in _SIGNATURES:
        if header.startswith(signature):
            return driver
    raise SurveyInputError(path, f"cannot read raster: not a GeoTIFF, PNG or JPEG file (found {_describe(header)}); "
                                 f"user rasters are opened with the {', '.join(ALLOWED_DRIVERS[:-1])} and "
                                 f"{ALLOWED_DRIVERS[-1]} drivers only")


def _describe(header: bytes) -> str:
    """What a file that is no GeoTIFF, PNG or JPEG seems to hold, for the error message."""
    start = header.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not start:
        return "an empty file"
    if b"<vrtdataset" in start:  # GDAL finds it anywhere in the header, after an XML declaration too
        return "VRT XML"
    for marker, name in _OTHER_FORMATS:
        if start.startswith(marker):
            return name
    return "text" if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in start) else "an unknown format"


@contextmanager
def _open(path: Path, **options: str) -> Iterator[rasterio.DatasetReader]:
    driver = raster_driver(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            # An absolute path: a relative one like "GTIFF_DIR:1:x.tif" could read as a driver's syntax.
            dataset = rasterio.open(os.path.abspath(path), driver=driver, **options)
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
    """Nodata pixels: NaN or infinite in any band (float images), or equal to ``nodata`` in every band.

    A float pixel with one non-finite band has no usable value (a band ratio or a network input
    would be NaN), so it counts as nodata whatever its other bands hold. A ``nodata`` value, by
    contrast, must fill every band: one band at 0 is a dark pixel, all bands at 0 the image's border.

    Args:
        pixels: (bands, ...) array.
        nodata: The nodata value, or None; NaN adds nothing to the non-finite rule.

    Returns:
        (...) boolean array, or None when integer pixels without a nodata value cannot be nodata.
    """
    floating = np.issubdtype(pixels.dtype, np.floating)
    if nodata is None and not floating:
        return None
    missing = ~np.isfinite(pixels).all(axis=0) if floating else np.zeros(pixels.shape[1:], dtype=bool)
    if nodata is not None and not np.isnan(nodata):
        missing |= (pixels == nodata).all(axis=0)
    return missing
