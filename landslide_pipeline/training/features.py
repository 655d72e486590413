"""Turning tile rasters into network input bands.

Image bands are scaled to [0, 1] by their dtype's range (uint8 / 255, uint16 / 65535; float
images are taken as already scaled). Terrain enters as slope / 90 degrees: absolute elevation
says little about landslides and varies between sites, while the slope break of a scarp and
the gentler deposit below it are what the DEM adds (study A, Table 7).
"""

from __future__ import annotations

import numpy as np

SLOPE_SCALE_DEG = 90.0
#: Band names that hold terrain, not image, values: never colour-jittered.
TERRAIN_BANDS = frozenset({"slope", "elevation", "hillshade", "relief"})


def scale_image(image: np.ndarray) -> np.ndarray:
    """Scales image bands to float32 [0, 1] according to their dtype."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    return image.astype(np.float32)


def tile_features(image: np.ndarray, terrain: np.ndarray | None) -> np.ndarray:
    """Network input for one tile: scaled image bands, then slope when terrain is given.

    Args:
        image: (bands, H, W) image tile.
        terrain: (2, H, W) elevation and slope tile, or None to use the image alone.

    Returns:
        float32 array (bands [+ 1], H, W); NaN slope (DEM nodata) becomes 0.
    """
    bands = [scale_image(image)]
    if terrain is not None:
        slope = np.nan_to_num(terrain[1], nan=0.0) / SLOPE_SCALE_DEG
        bands.append(slope[None].astype(np.float32))
    return np.concatenate(bands, axis=0)


def band_names(image_bands: int, use_terrain: bool) -> list[str]:
    names = ["red", "green", "blue"] if image_bands == 3 else [f"band_{i + 1}" for i in range(image_bands)]
    return names + (["slope"] if use_terrain else [])
