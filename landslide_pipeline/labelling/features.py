"""Object features: spectral, vegetation, texture, shape and terrain, one row per object.

Everything but texture comes from the objects' merged statistics (``RegionGraph``), so features
cost nothing per pixel. Image bands are on a 0..255 scale (``bands.py``).

- spectral: ``mean_<band>``, ``std_<band>``, ``ratio_<band>`` (band mean over the sum of band
  means), ``brightness`` (mean of the visible band means), ``brightness_diff`` (minus the
  neighbours' brightness);
- vegetation: ``vegetation`` is NDVI with a NIR band, else ExG = (2G - R - B) / (R + G + B);
  RGB images also get ``exg`` and ``vari``;
- soil: ``redness`` = (R - B) / (R + G + B): bare soil is warmer than rock, concrete and water;
- texture: ``glcm_contrast``, ``glcm_homogeneity``, ``glcm_entropy`` (``texture.py``);
- shape: ``area_m2``, ``compactness`` (4 pi area / outline^2 on pixel edges: a digital disc
  scores about 0.62), ``elongation`` (major / minor axis), ``length_m`` and ``width_m`` (axes
  of the ellipse with the object's second moments);
- terrain: ``mean_slope``, ``std_slope`` (degrees), ``relief`` (highest - lowest elevation, m),
  ``mean_elevation``, ``elevation_diff`` (minus the neighbours' mean, m); NaN without a DEM.

Neighbour means are weighted by the length of the shared border.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from landslide_pipeline.labelling.regions import RegionGraph

VISIBLE = ("red", "green", "blue")
TERRAIN_FEATURES = ("mean_slope", "std_slope", "relief", "mean_elevation", "elevation_diff")


def visible_bands(bands: tuple[str, ...]) -> list[int]:
    """Indexes of the red, green and blue bands, or of every band when none is named so."""
    return [k for k, band in enumerate(bands) if band in VISIBLE] or list(range(len(bands)))


def vegetation_index_name(bands: tuple[str, ...]) -> str:
    """``ndvi`` when the image has NIR and red bands, ``exg`` for RGB, else ``none``."""
    if "nir" in bands and "red" in bands:
        return "ndvi"
    return "exg" if set(VISIBLE) <= set(bands) else "none"


def object_features(graph: RegionGraph, image_bands: tuple[str, ...], pixel_size_m: tuple[float, float],
                    texture: dict[str, np.ndarray], has_dem: bool) -> pd.DataFrame:
    """One row per object of ``graph`` with every feature of the module docstring.

    Args:
        graph: The objects' statistics; its channels start with ``image_bands``, then slope and
            elevation.
        image_bands: Names of the image bands (lower case; ``red``, ``green``, ``blue``, ``nir``
            are recognised).
        pixel_size_m: Pixel width and height in metres.
        texture: GLCM features per object (``texture.CooccurrenceAccumulator.features``).
        has_dem: Whether terrain channels hold data.
    """
    means, stds = graph.means(), graph.stds()
    columns: dict[str, np.ndarray] = {"n_pixels": graph.count.astype(np.int64)}
    columns.update(_spectral(means, stds, graph, image_bands))
    columns.update(_vegetation(columns, image_bands))
    columns.update(texture)
    columns.update(_shape(graph, pixel_size_m))
    columns.update(_terrain(graph, means, stds) if has_dem else {n: np.full(graph.n_regions, np.nan)
                                                                    for n in TERRAIN_FEATURES})
    columns["brightness_diff"] = columns["brightness"] - neighbour_mean(graph, columns["brightness"])
    return pd.DataFrame(columns)


def neighbour_mean(graph: RegionGraph, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each object's neighbours, weighted by shared border; the object's
    own value where it has no neighbour."""
    a, b = graph.edges[:, 0], graph.edges[:, 1]
    n = graph.n_regions
    weight = np.bincount(a, graph.shared, n) + np.bincount(b, graph.shared, n)
    total = np.bincount(a, graph.shared * values[b], n) + np.bincount(b, graph.shared * values[a], n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, values)


def _spectral(means: np.ndarray, stds: np.ndarray, graph: RegionGraph,
              bands: tuple[str, ...]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    band_means = means[:, :len(bands)]
    total = band_means.sum(axis=1)
    for k, band in enumerate(bands):
        out[f"mean_{band}"] = band_means[:, k]
        out[f"std_{band}"] = stds[:, k]
        out[f"ratio_{band}"] = np.divide(band_means[:, k], total, out=np.zeros(len(total)), where=total > 0)
    out["brightness"] = band_means[:, visible_bands(bands)].mean(axis=1)
    return out


def _vegetation(columns: dict[str, np.ndarray], bands: tuple[str, ...]) -> dict[str, np.ndarray]:
    name = vegetation_index_name(bands)
    out: dict[str, np.ndarray] = {}
    if set(VISIBLE) <= set(bands):
        r, g, b = (columns[f"mean_{band}"] for band in VISIBLE)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["exg"] = np.where(r + g + b > 0, (2 * g - r - b) / (r + g + b), 0.0)
            out["redness"] = np.where(r + g + b > 0, (r - b) / (r + g + b), 0.0)
            vari = (g - r) / (g + r - b)
            out["vari"] = np.where(np.isfinite(vari), np.clip(vari, -1.0, 1.0), 0.0)
    if name == "ndvi":
        nir, red = columns["mean_nir"], columns["mean_red"]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["ndvi"] = np.where(nir + red > 0, (nir - red) / (nir + red), 0.0)
    n = len(columns["brightness"])
    out["vegetation"] = out[name] if name != "none" else np.full(n, np.nan)
    return out


def _shape(graph: RegionGraph, pixel_size_m: tuple[float, float]) -> dict[str, np.ndarray]:
    px, py = pixel_size_m
    count = graph.count
    compactness = 4 * math.pi * count / np.maximum(graph.perimeter, 1.0) ** 2
    major, minor = _axes(graph)
    scale = math.sqrt(px * py)
    return {
        "area_m2": count * px * py,
        "compactness": np.minimum(compactness, 1.0),
        "elongation": major / np.maximum(minor, 0.5),
        "length_m": 4 * major * scale,
        "width_m": 4 * minor * scale,
    }


def _axes(graph: RegionGraph) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations (pixels) along the principal axes of each object's pixel positions."""
    n = np.maximum(graph.count, 1)
    r, c, rc = (graph.channel(name) for name in ("row", "col", "row_col"))
    mean_r, mean_c = graph.sums[:, r] / n, graph.sums[:, c] / n
    var_r = np.maximum(graph.squares[:, r] / n - mean_r**2, 0.0) + 1 / 12  # a pixel's own extent
    var_c = np.maximum(graph.squares[:, c] / n - mean_c**2, 0.0) + 1 / 12
    cov = graph.sums[:, rc] / n - mean_r * mean_c
    half_trace = (var_r + var_c) / 2
    spread = np.sqrt(np.maximum(((var_r - var_c) / 2) ** 2 + cov**2, 0.0))
    return np.sqrt(half_trace + spread), np.sqrt(np.maximum(half_trace - spread, 1 / 12))


def _terrain(graph: RegionGraph, means: np.ndarray, stds: np.ndarray) -> dict[str, np.ndarray]:
    slope, elevation = graph.channel("slope"), graph.channel("elevation")
    mean_elevation = means[:, elevation]
    return {
        "mean_slope": means[:, slope],
        "std_slope": stds[:, slope],
        "relief": graph.high - graph.low,
        "mean_elevation": mean_elevation,
        "elevation_diff": mean_elevation - neighbour_mean(graph, mean_elevation),
    }
