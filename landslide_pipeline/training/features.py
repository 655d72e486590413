"""Turning tile rasters into network input bands.

Image bands are scaled to [0, 1] by their dtype's range (uint8 / 255, uint16 / 65535; float
images are taken as they are). That scaling is the model's *input contract*
(:func:`input_scaling`): a model trained on uint8 imagery refuses uint16 imagery rather than
mapping it with inputs 257 times too bright. Every model then standardises each band with the
statistics of its training tiles (``training.normalization``), inside the model.

Terrain enters as slope / 90 degrees: absolute elevation says little about landslides and
varies between sites, while the slope break of a scarp and the gentler deposit below it are what
the DEM adds (study A, Table 7).

Pixels without data (the image's nodata mask, NaN, a DEM gap) are NaN in the input bands; the
model's normalisation turns them into the band mean, so a gap neither poisons training nor
spreads through the convolutions.
"""

from __future__ import annotations

import numpy as np

from landslide_pipeline.geo.scene import dtype_range

SLOPE_SCALE_DEG = 90.0
#: Band names that hold terrain, not image, values: never colour-jittered.
TERRAIN_BANDS = frozenset({"slope", "elevation", "hillshade", "relief"})


def input_scaling(dtype: np.dtype) -> str:
    """The input contract of imagery of ``dtype``: the integer dtype's name (scaled by its
    maximum), or ``float`` (taken as it is)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return dtype.name
    if np.issubdtype(dtype, np.floating):
        return "float"
    raise ValueError(f"imagery of dtype {dtype} has no input scaling: use integer or float bands")


def scale_image(image: np.ndarray) -> np.ndarray:
    """Scales image bands to float32 [0, 1] by their dtype's range (``geo.scene.dtype_range``)."""
    return image.astype(np.float32) / dtype_range(image.dtype)


def tile_features(image: np.ndarray, terrain: np.ndarray | None, invalid: np.ndarray | None = None) -> np.ndarray:
    """Network input for one tile: scaled image bands, then slope when terrain is given.

    Args:
        image: (bands, H, W) image tile.
        terrain: (2, H, W) elevation and slope tile, or None to use the image alone.
        invalid: (H, W) True where the image holds no data.

    Returns:
        float32 array (bands [+ 1], H, W); NaN where there is no data (non-finite image values,
        ``invalid`` pixels, DEM gaps).
    """
    bands = [scale_image(image)]
    if terrain is not None:
        bands.append((terrain[1] / SLOPE_SCALE_DEG)[None].astype(np.float32))
    x = np.concatenate(bands, axis=0)
    x[~np.isfinite(x)] = np.nan
    if invalid is not None:
        x[:, invalid] = np.nan
    return x


def band_names(image_bands: int, use_terrain: bool) -> list[str]:
    """Input band names: red, green, blue (or band_1..n), then slope when terrain is used."""
    names = ["red", "green", "blue"] if image_bands == 3 else [f"band_{i + 1}" for i in range(image_bands)]
    return names + (["slope"] if use_terrain else [])
