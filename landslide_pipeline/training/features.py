"""Turning tile rasters into network input bands.

Image bands are scaled to [0, 1] by their dtype's range (uint8 / 255, uint16 / 65535; float
images are taken as they are). That scaling is the model's *input contract*
(:func:`input_scaling`): a model trained on uint8 imagery refuses uint16 imagery rather than
mapping it with inputs 257 times too bright. Every model then standardises each band with the
statistics of its training tiles (``training.normalization``), inside the model.

Terrain bands enter scaled to about unit range (``terrain_feature``): slope / 90 degrees (the
slope break of a scarp and the gentler deposit below it are what the DEM adds, study A Table 7),
hillshade as it is (0..1), local relief / 100 m, and elevation *centred on the tile's mean* and
divided by 100 m: absolute elevation varies between sites and says little about landslides, the
shape of the ground within a tile does. When mapping, the window (512 px by default) is the tile,
so elevation is centred over more ground than in a 256 px training tile: set the mapping window to
the tile size to match exactly. Which bands a model takes is its input set (``training.inputs``).

Pixels without data (the image's nodata mask, NaN, a DEM gap) are NaN in the input bands; the
model's normalisation turns them into the band mean, so a gap neither poisons training nor
spreads through the convolutions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from landslide_pipeline.geo.scene import dtype_range

SLOPE_SCALE_DEG = 90.0
ELEVATION_SCALE_M = 100.0
RELIEF_SCALE_M = 100.0
#: Terrain bands in the order a training set holds them.
TERRAIN_ORDER = ("elevation", "slope", "hillshade", "relief")
#: Band names that hold terrain, not image, values: never colour-jittered.
TERRAIN_BANDS = frozenset(TERRAIN_ORDER)


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


def terrain_feature(name: str, values: np.ndarray) -> np.ndarray:
    """One terrain band of a tile (or mapping window) as a network input band (module docstring)."""
    values = values.astype(np.float32)
    if name == "elevation":
        finite = values[np.isfinite(values)]
        return (values - (finite.mean() if finite.size else 0.0)) / ELEVATION_SCALE_M
    if name == "slope":
        return values / SLOPE_SCALE_DEG
    if name == "hillshade":
        return values
    if name == "relief":
        return values / RELIEF_SCALE_M
    raise ValueError(f"unknown terrain band {name!r}; known: {', '.join(TERRAIN_ORDER)}")


def tile_features(image: np.ndarray, terrain: Mapping[str, np.ndarray] | None = None,
                  invalid: np.ndarray | None = None, terrain_bands: Sequence[str] = ()) -> np.ndarray:
    """Network input for one tile: scaled image bands, then ``terrain_bands`` (``terrain_feature``).

    Args:
        image: (bands, H, W) image tile.
        terrain: The tile's terrain bands by name (elevation in m, slope in degrees, ...).
        invalid: (H, W) True where the image holds no data.
        terrain_bands: The terrain bands to add, in order; each must be in ``terrain``.

    Returns:
        float32 array (bands + len(terrain_bands), H, W); NaN where there is no data (non-finite
        image values, ``invalid`` pixels, DEM gaps).

    Raises:
        ValueError: a terrain band asked for that ``terrain`` lacks.
    """
    missing = [b for b in terrain_bands if terrain is None or b not in terrain]
    if missing:
        raise ValueError(f"terrain band(s) {', '.join(missing)} asked for; the tile has "
                         f"{', '.join(terrain or {}) or 'no terrain'}")
    bands = [scale_image(image)] + [terrain_feature(b, terrain[b])[None] for b in terrain_bands if terrain is not None]
    x = np.concatenate(bands, axis=0)
    x[~np.isfinite(x)] = np.nan
    if invalid is not None:
        x[:, invalid] = np.nan
    return x


def named_terrain(values: np.ndarray, names: Sequence[str | None]) -> dict[str, np.ndarray]:
    """A terrain raster's bands by name; unnamed bands (tiles written before their bands were
    named) take the base order, elevation then slope."""
    fallback = ("elevation", "slope", *(f"band_{i + 3}" for i in range(max(0, len(values) - 2))))
    return {name or fallback[i]: values[i] for i, name in enumerate(names)}


def training_terrain_bands(names: Sequence[str]) -> list[str]:
    """The terrain bands a training set holds, of those a terrain tile has, in ``TERRAIN_ORDER``."""
    return [b for b in TERRAIN_ORDER if b in names]


def band_names(image_bands: int, terrain_bands: Sequence[str] = ()) -> list[str]:
    """Input band names: red, green, blue (or band_1..n), then the terrain bands."""
    names = ["red", "green", "blue"] if image_bands == 3 else [f"band_{i + 1}" for i in range(image_bands)]
    return names + list(terrain_bands)
