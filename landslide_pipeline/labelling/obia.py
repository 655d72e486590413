"""Object-oriented landslide labels of a scene: segment, describe, classify (study A).

``label_scene`` runs the three steps on a ``SceneSource`` window by window:

1. multi-scale segmentation (``segmentation.py``): superpixels, merged at every scale;
2. a second pass over the windows at the classified scale: GLCM texture, object outlines and,
   when reference labels are given, each object's share of labelled pixels (for thresholds from
   samples); then every object feature (``features.py``);
3. the rule hierarchy (``rules.py``).

The result gives the object table (a GeoDataFrame of outlines with features and classes) and
the landslide mask of any window, so labels can be cut onto any tile grid.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from rasterio.features import shapes

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.labelling.features import (
    TERRAIN_FEATURES,
    VISIBLE,
    object_features,
    vegetation_index_name,
    visible_bands,
)
from landslide_pipeline.labelling.regions import RegionGraph
from landslide_pipeline.labelling.rules import Classification, RuleSet, classify
from landslide_pipeline.labelling.scene import SceneSource, windows
from landslide_pipeline.labelling.segmentation import Segmentation, segment_scene
from landslide_pipeline.labelling.texture import CooccurrenceAccumulator, quantise_relative
from landslide_pipeline.progress import Progress, no_progress, stage

#: (row, col, height, width) -> (landslide mask, known mask) of reference labels, for samples.
ReferenceMasks = Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]]
#: Features computed only for images with red, green and blue bands (``features._vegetation``).
_RGB_FEATURES = ("exg", "redness", "vari")
#: Per-band features: ``<prefix>_<band name>``.
_BAND_PREFIXES = ("mean", "std", "ratio")


@dataclass
class SceneLabels:
    """The classified objects of a scene and their landslide mask.

    Attributes:
        segmentation: The multi-scale segmentation (its rasters live until the ``with`` ends).
        level: Index of the classified scale.
        objects: One row per object of the classified scale: ``segment_id``, ``scale``,
            ``parent_<scale>`` (the containing object at each coarser scale), the features,
            ``sample_fraction`` (share inside reference labels, NaN without), ``class``,
            ``landslide``; ``geometry`` (outline in the scene CRS) when outlines were made.
        classification: Classes, thresholds used and clean-up counts.
        seconds: Wall time of each step: ``segmentation``, ``features`` (texture, outlines and
            features) and ``classification``.
    """

    segmentation: Segmentation
    level: int
    objects: gpd.GeoDataFrame | pd.DataFrame
    classification: Classification
    seconds: dict[str, float]

    def mask(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """uint8 {0, 1} landslide mask of a window of the scene."""
        ids = self.segmentation.objects(self.level, row, col, height, width)
        return np.where(ids >= 0, self.classification.landslide[np.maximum(ids, 0)], False).astype(np.uint8)

    def summary(self) -> dict[str, Any]:
        """Counts and scales, for logs and asset metadata."""
        landslide = self.classification.landslide
        return {
            "scales": list(self.segmentation.params.scales),
            "classified_scale": self.segmentation.params.scales[self.level],
            "objects_per_scale": [g.n_regions for g in self.segmentation.graphs],
            "superpixels": int(len(self.segmentation.level_of[0])),
            "landslide_objects": int(landslide.sum()),
            "landslide_fraction": float(self.objects["n_pixels"][landslide].sum() / self.objects["n_pixels"].sum()),
            "classes": self.objects["class"].value_counts().to_dict(),
            **self.classification.cleanup,
            "seconds": {step: round(value, 3) for step, value in self.seconds.items()},
        }


def check_rule_bands(rules: RuleSet, bands: tuple[str, ...], image: Path | str) -> None:
    """Refuses rules whose features need image bands the scene does not have, before any work.

    Args:
        rules: The rule set.
        bands: The scene's band names (``geo.scene.band_names``).
        image: What the error names: the image file.

    Raises:
        SurveyInputError: naming the image, its bands, and each feature with the bands it needs.
    """
    needs = {feature: need for feature in sorted(rules.features_used()) if (need := _bands_needed(feature, bands))}
    if needs:
        wanted = "; ".join(f"{feature} needs {need}" for feature, need in needs.items())
        raise SurveyInputError(image, f"{len(bands)} band(s) named {list(bands)}, but the OBIA rules {rules.source} "
                                      f"use features these bands cannot give: {wanted}. Name the bands red, green, blue "
                                      "(nir) in the GeoTIFF's band descriptions or colour interpretation, or keep "
                                      "three of them with survey.toml bands = [r, g, b] (three bands are RGB)")


def _bands_needed(feature: str, bands: tuple[str, ...]) -> str | None:
    """The bands ``feature`` needs that ``bands`` lack, as text, or None when it can be computed."""
    rgb = "+".join(VISIBLE)
    if feature in _RGB_FEATURES and not set(VISIBLE) <= set(bands):
        return rgb
    if feature == "ndvi" and not {"nir", "red"} <= set(bands):
        return "nir+red"
    if feature == "vegetation" and vegetation_index_name(bands) == "none":
        return f"{rgb} (ExG) or nir+red (NDVI)"
    prefix, _, band = feature.partition("_")
    if prefix in _BAND_PREFIXES and feature not in TERRAIN_FEATURES and band not in bands:
        return band
    return None


@contextmanager
def label_scene(source: SceneSource, rules: RuleSet, scratch_dir: Path | None = None,
                reference: ReferenceMasks | None = None, outlines: bool = True,
                image: Path | str = "scene", progress: Progress = no_progress) -> Iterator[SceneLabels]:
    """Segments, describes and classifies a scene; the result is valid inside the ``with`` block.

    Args:
        source: The scene.
        rules: Segmentation parameters, class hierarchy and clean-up.
        scratch_dir: Where the temporary rasters go (the system's temporary folder by default);
            they take 5 bytes per pixel and are removed on leaving the block.
        reference: Reference landslide masks, for thresholds derived from labelled samples.
        outlines: Whether to vectorise the objects' outlines (``objects.geometry``).
        image: The scene's image, for errors.
        progress: Called with the windows done and their total over the two passes (superpixels,
            then texture and outlines); the merging, features and classification in between are quick.

    Raises:
        SurveyInputError: the rules use features that need bands the scene lacks (``check_rule_bands``).
        RuleError: the rules name features that do not exist.
        ValueError: the scene holds no valid pixel.
    """
    check_rule_bands(rules, source.bands, image)
    with tempfile.TemporaryDirectory(prefix="obia-", dir=scratch_dir) as scratch:
        started = time.perf_counter()
        segmentation = segment_scene(source, rules.segmentation, Path(scratch), stage(progress, 0, 2))
        segmented = time.perf_counter()
        level = rules.level
        scan = _scan_objects(segmentation, level, reference, outlines, stage(progress, 1, 2))
        graph = segmentation.graphs[level]
        features = object_features(graph, source.bands, source.pixel_size_m(), scan.texture, source.has_dem)
        described = time.perf_counter()
        classification = classify(features, rules, graph, scan.samples)
        table = _object_table(segmentation, level, features, scan, classification)
        seconds = {"segmentation": segmented - started, "features": described - segmented,
                   "classification": time.perf_counter() - described}
        yield SceneLabels(segmentation=segmentation, level=level, objects=table, classification=classification,
                          seconds=seconds)


@dataclass
class _Scan:
    texture: dict[str, np.ndarray]
    samples: np.ndarray | None
    outlines: gpd.GeoSeries | None


def _scan_objects(segmentation: Segmentation, level: int, reference: ReferenceMasks | None,
                  outlines: bool, progress: Progress) -> _Scan:
    """The second pass over the windows: texture, reference shares and outlines per object."""
    source, params = segmentation.source, segmentation.params
    n = segmentation.graphs[level].n_regions
    texture = CooccurrenceAccumulator(n, params.texture_levels)
    mean_brightness = _mean_brightness(segmentation.graphs[level], source.bands)
    labelled, known = np.zeros(n), np.zeros(n)
    pieces: list[tuple[Any, int]] = []
    all_windows = list(windows(source.height, source.width, params.window_px))
    for done, (row, col, height, width) in enumerate(all_windows, start=1):
        # One row above and one column to the left, so pairs across window borders count once.
        r0, c0 = max(row - 1, 0), max(col - 1, 0)
        ids = segmentation.objects(level, r0, c0, height + row - r0, width + col - c0)
        brightness = segmentation.brightness.read(r0, c0, row + height - r0, col + width - c0).astype(np.float32)
        grey = quantise_relative(brightness, mean_brightness[np.maximum(ids, 0)], params.texture_levels)
        texture.add(ids, grey, row > 0, col > 0)
        core = ids[row - r0:, col - c0:]
        if reference is not None:
            mask, valid = reference(row, col, height, width)
            inside = (core >= 0) & valid
            labelled += np.bincount(core[inside], mask[inside].astype(np.float64), n)
            known += np.bincount(core[inside], minlength=n)
        if outlines:
            pieces += _outline_pieces(core, source.transform @ Affine.translation(col, row))
        progress(done, len(all_windows))
    samples = None
    if reference is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = np.where(known > 0, labelled / known, np.nan)
    return _Scan(texture.features(), samples, _dissolve(pieces, n, source.crs) if outlines else None)


def _mean_brightness(graph: RegionGraph, bands: tuple[str, ...]) -> np.ndarray:
    return graph.means()[:, visible_bands(bands)].mean(axis=1)


def _outline_pieces(ids: np.ndarray, transform: Affine) -> list[tuple[Any, int]]:
    ids = ids.astype(np.int32)
    return [(_polygon(geometry["coordinates"]), int(value))
            for geometry, value in shapes(ids, mask=ids >= 0, connectivity=4, transform=transform)]


def _polygon(rings: list) -> shapely.Polygon:
    """A polygon from GeoJSON rings (faster than ``shapely.geometry.shape`` for many of them)."""
    shell, *holes = (shapely.linearrings(np.asarray(ring)) for ring in rings)
    return shapely.polygons(shell, holes=holes or None)


def _dissolve(pieces: list[tuple[Any, int]], n: int, crs: Any) -> gpd.GeoSeries:
    """One outline per object: pieces cut by window borders are unioned."""
    frame = gpd.GeoDataFrame({"segment_id": [v for _, v in pieces]}, geometry=[g for g, _ in pieces], crs=crs)
    split = frame["segment_id"].duplicated(keep=False)
    whole = frame[~split].set_index("segment_id").geometry
    if split.any():
        joined = frame[split].dissolve(by="segment_id").geometry
        whole = pd.concat([whole, joined])
    return gpd.GeoSeries(whole.reindex(np.arange(n)).to_numpy(), crs=crs)


def _object_table(segmentation: Segmentation, level: int, features: pd.DataFrame, scan: _Scan,
                  classification: Classification) -> gpd.GeoDataFrame | pd.DataFrame:
    scales = segmentation.params.scales
    n = len(features)
    columns: dict[str, Any] = {"segment_id": np.arange(n, dtype=np.int64),
                               "scale": np.full(n, float(scales[level]))}
    for coarser in range(level + 1, len(scales)):
        columns[f"parent_{scales[coarser]:g}"] = segmentation.parents(level, coarser)
    table = pd.concat([pd.DataFrame(columns), features], axis=1)
    table["vegetation_index"] = vegetation_index_name(segmentation.source.bands)
    table["sample_fraction"] = scan.samples if scan.samples is not None else np.nan
    table["class"] = classification.classes
    table["landslide"] = classification.landslide
    if scan.outlines is None:
        return table
    return gpd.GeoDataFrame(table, geometry=scan.outlines.to_numpy(), crs=scan.outlines.crs)
