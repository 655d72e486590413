"""Mapping a whole survey with a trained model: probability and mask rasters, landslide polygons,
and the changes against the site's previous survey."""

from landslide_pipeline.mapping.changes import ChangeRules, change_summary, detect_changes, previous_survey
from landslide_pipeline.mapping.outputs import MASK_NODATA, PROBABILITY_NODATA, PROBABILITY_SCALE
from landslide_pipeline.mapping.predict import PredictionReport, PredictionSpec, map_scene, predict_scene
from landslide_pipeline.mapping.vectorize import (
    LANDSLIDES_LAYER,
    VectorizeSpec,
    landslide_polygons,
    vectorize_landslides,
    write_geopackage,
)

__all__ = [
    "LANDSLIDES_LAYER",
    "MASK_NODATA",
    "PROBABILITY_NODATA",
    "PROBABILITY_SCALE",
    "ChangeRules",
    "PredictionReport",
    "PredictionSpec",
    "VectorizeSpec",
    "change_summary",
    "detect_changes",
    "landslide_polygons",
    "map_scene",
    "predict_scene",
    "previous_survey",
    "vectorize_landslides",
    "write_geopackage",
]
