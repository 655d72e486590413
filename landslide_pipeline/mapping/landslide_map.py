"""A survey's landslide map as the pipeline delivers it: probability and mask COGs, landslide
polygons, and ``map.json`` saying which model made them and how."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio

from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.layout import MAP_FACTS, MAP_MASK, MAP_POLYGONS, MAP_PROBABILITY, MAP_QUICKLOOK, MAP_REPORT
from landslide_pipeline.mapping.predict import PredictionReport, PredictionSpec, map_scene
from landslide_pipeline.mapping.styles import mask_qml, probability_qml, write_raster_style
from landslide_pipeline.mapping.vectorize import VectorizeSpec, vectorize_landslides
from landslide_pipeline.metrics.confusion import confusion_counts, segmentation_metrics
from landslide_pipeline.progress import Progress, no_progress
from landslide_pipeline.reports.quicklook import map_report, quicklook
from landslide_pipeline.training.checkpoint import read_spec
from landslide_pipeline.training.inputs import INPUT_SETS, needs_dem


class NoModelForSurveyError(LookupError):
    """No registered model takes the inputs a survey has."""


def mapping_alias(requested: str, has_dem: bool, alias_bands: Callable[[str], Sequence[str] | None]) -> str:
    """The registered alias to map a survey with.

    ``requested`` (``champion`` by default) when its model takes inputs the survey has; for a
    survey without a DEM and a model that takes terrain bands, the same alias of the image-only
    input set instead (``champion-rgb``), so a survey without a DEM is mapped by default.

    Args:
        requested: The alias asked for.
        has_dem: Whether the survey has a DEM.
        alias_bands: An alias's model bands, or None when no version has that alias.

    Raises:
        NoModelForSurveyError: ``requested`` is not registered, or the survey has no DEM and no
            image-only model is registered under ``<requested>-rgb``.
    """
    bands = alias_bands(requested)
    if bands is None:
        raise NoModelForSurveyError(f"no registered model has the alias {requested!r}: materialize champion_model")
    if has_dem or not needs_dem(bands):
        return requested
    image_only = [f"{requested}-{name}" for name, terrain in INPUT_SETS.items() if not terrain]
    for alias in image_only:
        fallback = alias_bands(alias)
        if fallback is not None and not needs_dem(fallback):
            return alias
    raise NoModelForSurveyError(
        f"the survey has no DEM, the model @{requested} takes {', '.join(bands)}, and no image-only model is "
        f"registered as {' or '.join('@' + a for a in image_only)}: train a variant @rgb (e.g. trained_model "
        "partition linknet@rgb), then materialize evaluation_table and champion_model, or give the survey a DEM")


@dataclass(frozen=True)
class LandslideMap:
    """What mapping one scene produced."""

    report: PredictionReport
    polygons: gpd.GeoDataFrame

    @property
    def landslide_area_m2(self) -> float:
        """Total area of the landslide polygons."""
        return float(self.polygons["area_m2"].sum())


def write_landslide_map(scene: SceneFiles, model_dir: Path, out_dir: Path, spec: PredictionSpec,
                        vectorize: VectorizeSpec, provenance: dict[str, Any],
                        final_dir: Path | None = None, progress: Progress = no_progress) -> LandslideMap:
    """Maps ``scene`` with the saved model in ``model_dir`` into ``out_dir``.

    Args:
        scene: The survey's scene.
        model_dir: A saved model (``training.checkpoint.save_model``).
        out_dir: Where the COGs, ``landslides.gpkg`` and ``map.json`` go (often a staging folder).
        spec: Windows, overlap and threshold.
        vectorize: Minimum polygon area and simplification.
        provenance: Recorded first in ``map.json`` (e.g. the model's name, version and run).
        final_dir: Where ``out_dir`` ends up once published, for the paths in ``map.json``.
        progress: Called with the strips of windows mapped and their total.

    Besides the rasters, their QGIS styles and the polygons: ``quicklook.png`` (the image with the
    outlines, scale bar, north arrow, legend) and ``report.md`` (counts, areas, largest landslides,
    model) for a first look (``reports.quicklook``).
    """
    report = map_scene(scene, model_dir, out_dir, spec, progress=progress)
    write_raster_style(out_dir / MAP_PROBABILITY, probability_qml())
    write_raster_style(out_dir / MAP_MASK, mask_qml())
    polygons = vectorize_landslides(out_dir / MAP_MASK, out_dir / MAP_PROBABILITY, out_dir / MAP_POLYGONS, vectorize)
    landslide_map = LandslideMap(report, polygons)
    final_dir = final_dir or out_dir
    threshold = spec.threshold if spec.threshold is not None else read_spec(model_dir).threshold
    facts = {**provenance, "n_landslides": len(polygons), "landslide_area_m2": landslide_map.landslide_area_m2,
             **report.to_dict(), "threshold": threshold, "probability": str(final_dir / MAP_PROBABILITY),
             "mask": str(final_dir / MAP_MASK)}
    (out_dir / MAP_FACTS).write_text(json.dumps(facts, indent=2, default=str))
    title = f"Landslides of {provenance.get('survey_id') or scene.name.stem}"
    image = quicklook(scene.images, polygons, out_dir / MAP_QUICKLOOK, title)
    map_report(out_dir / MAP_REPORT, title, facts, polygons, image)
    return landslide_map


def map_scores(map_dir: Path, reference: Path) -> dict[str, Any]:
    """A map's landslide-class scores against a reference raster on the same grid (e.g. a
    synthetic survey's ``ground_truth.tif``), with the alias, label source and inputs of the model
    that made it (from ``map.json``).

    Raises:
        ValueError: the reference is on another grid than the map.
    """
    with rasterio.open(map_dir / MAP_MASK) as mask, rasterio.open(reference) as truth:
        if (mask.shape, mask.transform) != (truth.shape, truth.transform):
            raise ValueError(f"{reference} is on another grid than {map_dir / MAP_MASK}")
        predicted, valid = mask.read(1), mask.read_masks(1) > 0
        expected = truth.read(1)
    facts = json.loads((map_dir / MAP_FACTS).read_text())
    scores = segmentation_metrics(confusion_counts(np.where(valid, predicted == 1, 0), np.where(valid, expected, 0)))
    return {"survey_id": facts["survey_id"], "alias": facts["alias"], "label_source": facts.get("label_source"),
            "inputs": facts.get("inputs"), "version": facts["version"],
            **{k: scores[k] for k in ("precision", "recall", "f1", "kappa")}}
