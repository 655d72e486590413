"""A seeded synthetic survey of an open-pit mine, as a UAV would capture it: the image, the DEM,
hand-drawn landslide labels and the true landslide mask, for testing and demonstrating the pipeline.

Modules, from the bottom up: ``grid`` (scene grid, noise, sampling), ``terrain`` (natural terrain
and the benched pit), ``site`` (haul road, pond, buildings), ``landslides`` (placement, DEM
disturbance, hand-drawn outlines), ``render`` (the image) and ``survey`` (the spec, the scene and
its files).
"""

from landslide_pipeline.synthetic.survey import (
    BAND_NAMES,
    DEM_NODATA,
    LABELS_LAYER,
    SyntheticScene,
    SyntheticSurvey,
    SyntheticSurveySpec,
    build_scene,
    generate_survey,
)

__all__ = [
    "BAND_NAMES",
    "DEM_NODATA",
    "LABELS_LAYER",
    "SyntheticScene",
    "SyntheticSurvey",
    "SyntheticSurveySpec",
    "build_scene",
    "generate_survey",
]
