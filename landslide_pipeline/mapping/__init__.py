"""Mapping a whole survey with a trained model: probability and mask rasters, landslide polygons."""

from landslide_pipeline.mapping.outputs import MASK_NODATA, PROBABILITY_NODATA, PROBABILITY_SCALE
from landslide_pipeline.mapping.predict import PredictionReport, PredictionSpec, predict_scene, predict_survey
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
    "PredictionReport",
    "PredictionSpec",
    "VectorizeSpec",
    "landslide_polygons",
    "predict_scene",
    "predict_survey",
    "vectorize_landslides",
    "write_geopackage",
]
