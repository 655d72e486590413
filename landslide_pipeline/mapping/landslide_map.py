"""A survey's landslide map as the pipeline delivers it: probability and mask COGs, landslide
polygons, and ``map.json`` saying which model made them and how."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd

from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.layout import MAP_FACTS, MAP_MASK, MAP_POLYGONS, MAP_PROBABILITY
from landslide_pipeline.mapping.predict import PredictionReport, PredictionSpec, map_scene
from landslide_pipeline.mapping.vectorize import VectorizeSpec, vectorize_landslides


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
                        final_dir: Path | None = None) -> LandslideMap:
    """Maps ``scene`` with the saved model in ``model_dir`` into ``out_dir``.

    Args:
        scene: The survey's scene.
        model_dir: A saved model (``training.checkpoint.save_model``).
        out_dir: Where the COGs, ``landslides.gpkg`` and ``map.json`` go (often a staging folder).
        spec: Windows, overlap and threshold.
        vectorize: Minimum polygon area and simplification.
        provenance: Recorded first in ``map.json`` (e.g. the model's name, version and run).
        final_dir: Where ``out_dir`` ends up once published, for the paths in ``map.json``.
    """
    report = map_scene(scene, model_dir, out_dir, spec)
    polygons = vectorize_landslides(out_dir / MAP_MASK, out_dir / MAP_PROBABILITY, out_dir / MAP_POLYGONS, vectorize)
    landslide_map = LandslideMap(report, polygons)
    final_dir = final_dir or out_dir
    facts = {**provenance, "n_landslides": len(polygons), "landslide_area_m2": landslide_map.landslide_area_m2,
             **report.to_dict(), "probability": str(final_dir / MAP_PROBABILITY), "mask": str(final_dir / MAP_MASK)}
    (out_dir / MAP_FACTS).write_text(json.dumps(facts, indent=2, default=str))
    return landslide_map
