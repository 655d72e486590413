"""Terrain bands derived from a DEM, in map units."""

from __future__ import annotations

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject


def slope_degrees(elevation: np.ndarray, res_x: float, res_y: float) -> np.ndarray:
    """Slope in degrees from an elevation grid with pixel sizes in the same unit as elevation."""
    dz_dy, dz_dx = np.gradient(elevation.astype(np.float64), res_y, res_x)
    return np.degrees(np.arctan(np.hypot(dz_dx, dz_dy))).astype(np.float32)


def dem_on_grid(
    dem: rasterio.DatasetReader,
    transform: Affine,
    shape: tuple[int, int],
    crs: CRS,
    margin: int = 1,
) -> np.ndarray:
    """Resamples the DEM (bilinear) onto an image window's grid, with ``margin`` extra pixels.

    The margin lets slope be computed without edge effects at the window border; GDAL reads
    only the DEM blocks the window needs, so memory stays bounded by the window size.

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


def terrain_bands(elevation_with_margin: np.ndarray, res: tuple[float, float], margin: int = 1) -> np.ndarray:
    """Stacks elevation and slope, cropping the margin: float32 array of shape (2, H, W).

    Where the margin falls outside the DEM (at the scene's edge) it is extrapolated linearly
    from the window (odd reflection), so edge pixels get a slope as accurate as interior ones.
    """
    crop = (slice(margin, -margin or None), slice(margin, -margin or None))
    elevation = elevation_with_margin
    if margin and np.isnan(elevation).any():
        extrapolated = np.pad(elevation[crop], margin, mode="reflect", reflect_type="odd")
        elevation = np.where(np.isnan(elevation), extrapolated, elevation)
    slope = slope_degrees(elevation, res[0], res[1])
    return np.stack([elevation[crop], slope[crop]]).astype(np.float32)
