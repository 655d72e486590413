"""Terrain bands derived from a DEM resampled onto the image grid, in map units (metres).

Terrain tiles always hold ``elevation`` (m) and ``slope`` (degrees) as bands 1 and 2, which the
training code reads; ``hillshade`` (0..1, sun from the north-west at 45 degrees) and ``relief``
(highest minus lowest elevation within ``relief_radius_m``, m) follow when selected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject
from scipy import ndimage

BASE_TERRAIN_BANDS = ("elevation", "slope")
OPTIONAL_TERRAIN_BANDS = ("hillshade", "relief")
_METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class TerrainSpec:
    """Which terrain bands to derive from a DEM.

    Attributes:
        bands: Band names, ``elevation`` and ``slope`` first, then any of ``OPTIONAL_TERRAIN_BANDS``.
        relief_radius_m: Neighbourhood radius of the ``relief`` band.
    """

    bands: tuple[str, ...] = BASE_TERRAIN_BANDS
    relief_radius_m: float = 10.0


#: Elevation and slope only.
BASE_TERRAIN = TerrainSpec()


def slope_degrees(elevation: np.ndarray, res_x: float, res_y: float) -> np.ndarray:
    """Slope in degrees from an elevation grid with pixel sizes in the same unit as elevation."""
    dz_dy, dz_dx = np.gradient(elevation.astype(np.float64), res_y, res_x)
    return np.degrees(np.arctan(np.hypot(dz_dx, dz_dy))).astype(np.float32)


def hillshade(elevation: np.ndarray, res_x: float, res_y: float, azimuth_deg: float = 315.0,
              altitude_deg: float = 45.0) -> np.ndarray:
    """Shaded relief in 0..1 for a sun at the given azimuth (clockwise from north) and altitude."""
    dz_drow, dz_east = np.gradient(elevation.astype(np.float64), res_y, res_x)
    dz_north = -dz_drow  # rows run southwards
    azimuth, altitude = math.radians(azimuth_deg), math.radians(altitude_deg)
    # Cosine between the surface normal (-dz_east, -dz_north, 1) and the direction to the sun.
    towards_sun = dz_east * math.sin(azimuth) + dz_north * math.cos(azimuth)
    shade = (math.sin(altitude) - math.cos(altitude) * towards_sun) / np.sqrt(1.0 + dz_east**2 + dz_north**2)
    return np.clip(shade, 0.0, 1.0).astype(np.float32)


def local_relief(elevation: np.ndarray, radius_px: int) -> np.ndarray:
    """Highest minus lowest elevation in a (2r+1)-pixel square around each pixel; NaN near DEM holes."""
    size = 2 * radius_px + 1
    high = ndimage.maximum_filter(np.nan_to_num(elevation, nan=-np.inf), size=size, mode="nearest")
    low = ndimage.minimum_filter(np.nan_to_num(elevation, nan=np.inf), size=size, mode="nearest")
    relief = high - low
    return np.where(np.isfinite(relief), relief, np.nan).astype(np.float32)


def pixel_size_m(crs: CRS, transform: Affine, row: float, col: float) -> tuple[float, float]:
    """Pixel width and height in metres at a pixel, for projected and geographic CRSs.

    Projected units (feet, US survey feet) are converted with the CRS's unit factor; degrees
    with the length of a degree at that latitude, accurate enough for slope.
    """
    res_x, res_y = math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        _, latitude = transform @ (col, row)
        return res_x * _METRES_PER_DEGREE * math.cos(math.radians(latitude)), res_y * _METRES_PER_DEGREE
    factor = crs.linear_units_factor[1]
    return res_x * factor, res_y * factor


def terrain_margin(bands: tuple[str, ...], res_m: tuple[float, float], relief_radius_m: float) -> int:
    """Extra DEM pixels needed around a window so its edge pixels get full-neighbourhood values."""
    if "relief" in bands:
        return max(1, math.ceil(relief_radius_m / min(res_m)))
    return 1


def dem_on_grid(
    dem: rasterio.DatasetReader,
    transform: Affine,
    shape: tuple[int, int],
    crs: CRS,
    margin: int = 1,
) -> np.ndarray:
    """Resamples the DEM (bilinear) onto an image window's grid, with ``margin`` extra pixels.

    GDAL reads only the DEM blocks the window needs, so memory stays bounded by the window.

    Returns:
        float32 elevation of shape ``(height + 2 * margin, width + 2 * margin)``, NaN where the
        DEM has no data.
    """
    height, width = shape
    out = np.full((height + 2 * margin, width + 2 * margin), np.nan, dtype=np.float32)
    reproject(
        source=rasterio.band(dem, 1),
        destination=out,
        dst_transform=transform @ Affine.translation(-margin, -margin),
        dst_crs=crs,
        dst_nodata=np.nan,
        src_nodata=dem.nodata,
        resampling=Resampling.bilinear,
    )
    return out


def terrain_bands(elevation_with_margin: np.ndarray, res: tuple[float, float], margin: int = 1,
                  bands: tuple[str, ...] = BASE_TERRAIN_BANDS, relief_radius_m: float = 10.0) -> np.ndarray:
    """Computes the terrain bands, cropping the margin: float32 array of shape (len(bands), H, W).

    Where the margin falls outside the DEM (at the scene's edge) it is extrapolated linearly
    from the window (odd reflection), so edge pixels get a slope as accurate as interior ones.

    Args:
        elevation_with_margin: Elevation (m) of the window plus ``margin`` pixels on every side.
        res: Pixel width and height in metres.
        margin: Width of the margin in pixels.
        bands: Names from elevation, slope, hillshade, relief, in output order.
        relief_radius_m: Radius of the relief neighbourhood.
    """
    crop = (slice(margin, -margin or None), slice(margin, -margin or None))
    elevation = elevation_with_margin
    if margin and np.isnan(elevation).any():
        extrapolated = np.pad(elevation[crop], margin, mode="reflect", reflect_type="odd")
        elevation = np.where(np.isnan(elevation), extrapolated, elevation)
    compute = {
        "elevation": lambda: elevation,
        "slope": lambda: slope_degrees(elevation, res[0], res[1]),
        "hillshade": lambda: hillshade(elevation, res[0], res[1]),
        "relief": lambda: local_relief(elevation, max(1, math.ceil(relief_radius_m / min(res)))),
    }
    return np.stack([compute[name]()[crop] for name in bands]).astype(np.float32)
