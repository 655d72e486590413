"""Where the segmentation reads its pixels: a survey's GeoTIFFs, or arrays in memory.

A ``SceneSource`` hands out one window at a time: the image bands on a 0..255 scale, which
pixels hold data, and the DEM's elevation and slope on the image grid. Reading window by window
keeps memory bounded by the window, whatever the scene's size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from landslide_pipeline.geo.scene import SceneFiles, SceneReader, band_names, dtype_range
from landslide_pipeline.geo.terrain import slope_degrees


@dataclass(frozen=True)
class WindowPixels:
    """One window of a scene.

    Attributes:
        image: (bands, h, w) float32 image bands scaled to 0..255.
        valid: (h, w) True where the image holds data.
        elevation: (h, w) float32 elevation (m), or None without a DEM.
        slope: (h, w) float32 slope (degrees), or None without a DEM.
    """

    image: np.ndarray
    valid: np.ndarray
    elevation: np.ndarray | None
    slope: np.ndarray | None


class SceneSource(Protocol):
    """A georeferenced scene read window by window."""

    height: int
    width: int
    bands: tuple[str, ...]
    transform: Affine
    crs: CRS | None
    has_dem: bool

    def pixel_size_m(self) -> tuple[float, float]:
        """Pixel width and height in metres (at the scene's centre)."""
        ...

    def read(self, row: int, col: int, height: int, width: int) -> WindowPixels:
        """The pixels of rows ``row..row+height`` and columns ``col..col+width``."""
        ...


def scale_to_byte(pixels: np.ndarray) -> np.ndarray:
    """Image values on a 0..255 scale: integers by their dtype's range, floats taken as 0..1."""
    return pixels.astype(np.float32) * np.float32(255.0 / dtype_range(pixels.dtype))


def _window_pixels(image: np.ndarray, valid: np.ndarray, elevation: np.ndarray | None,
                   slope: np.ndarray | None) -> WindowPixels:
    """Scales the image and counts non-finite values (NaN in float images) as nodata."""
    image = scale_to_byte(image)
    finite = np.isfinite(image).all(axis=0)
    if not finite.all():
        valid = valid & finite
        image = np.where(finite, image, 0.0).astype(np.float32)
    return WindowPixels(image, valid, elevation, slope)


def windows(height: int, width: int, size: int) -> Iterator[tuple[int, int, int, int]]:
    """(row, col, height, width) of the windows that tile a scene, row by row."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield row, col, min(size, height - row), min(size, width - col)


def _slope_with_margin(elevation: np.ndarray, res: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(elevation, slope) of a window from its elevation with a one-pixel margin.

    Where the margin (or a DEM hole) is NaN, the margin is extrapolated linearly from the
    window, so edge pixels get a full-neighbourhood slope.
    """
    core = elevation[1:-1, 1:-1]
    if np.isnan(elevation).any():
        extended = np.pad(core, 1, mode="reflect", reflect_type="odd")
        elevation = np.where(np.isnan(elevation), extended, elevation)
    return core, slope_degrees(elevation, res[0], res[1])[1:-1, 1:-1]


class RasterSource:
    """A survey's scene (``geo.scene``), opened for the duration of a ``with`` block.

    It honours the survey's band selection and nodata override like tiling and mapping do. The
    DEM may have any CRS and resolution that covers the image: each window is resampled
    (bilinear) onto the image grid with a one-pixel margin for the slope.
    """

    def __init__(self, scene: SceneFiles) -> None:
        self._reader = SceneReader(scene)

    def __enter__(self) -> RasterSource:
        reader = self._reader.__enter__()
        self.height, self.width, self.transform, self.crs = reader.height, reader.width, reader.transform, reader.crs
        self.bands = reader.band_names
        self.has_dem = reader.has_dem
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.__exit__(*exc)

    def pixel_size_m(self) -> tuple[float, float]:
        return self._reader.pixel_size_m(self.height / 2, self.width / 2)

    def read(self, row: int, col: int, height: int, width: int) -> WindowPixels:
        image, invalid = self._reader.read(Window(col, row, width, height))
        valid = np.ones((height, width), dtype=bool) if invalid is None else ~invalid
        if not self.has_dem:
            return _window_pixels(image, valid, None, None)
        padded = self._reader.elevation(row, col, height, width, margin=1)
        return _window_pixels(image, valid, *_slope_with_margin(padded, self.pixel_size_m()))


class ArraySource:
    """A scene held in memory (tests, benchmarks, synthetic scenes)."""

    def __init__(self, image: np.ndarray, dem: np.ndarray | None, transform: Affine, crs: CRS | str | None,
                 bands: tuple[str, ...] | None = None, valid: np.ndarray | None = None) -> None:
        self._image, self._dem, self._valid = image, dem, valid
        self.height, self.width = image.shape[1:]
        self.transform = transform
        self.crs = CRS.from_user_input(crs) if crs is not None else None
        self.bands = bands or band_names([None] * image.shape[0], [None] * image.shape[0])
        self.has_dem = dem is not None

    def pixel_size_m(self) -> tuple[float, float]:
        return math.hypot(self.transform.a, self.transform.d), math.hypot(self.transform.b, self.transform.e)

    def read(self, row: int, col: int, height: int, width: int) -> WindowPixels:
        rows, cols = slice(row, row + height), slice(col, col + width)
        valid = self._valid[rows, cols] if self._valid is not None else np.ones((height, width), dtype=bool)
        image = self._image[:, rows, cols]
        if self._dem is None:
            return _window_pixels(image, valid, None, None)
        padded = np.full((height + 2, width + 2), np.nan, dtype=np.float32)
        r0, c0 = max(row - 1, 0), max(col - 1, 0)
        r1, c1 = min(row + height + 1, self.height), min(col + width + 1, self.width)
        padded[r0 - row + 1:r1 - row + 1, c0 - col + 1:c1 - col + 1] = self._dem[r0:r1, c0:c1]
        return _window_pixels(image, valid, *_slope_with_margin(padded, self.pixel_size_m()))
