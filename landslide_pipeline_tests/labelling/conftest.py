"""A small synthetic open-pit scene shared by the labelling tests (built once, in memory)."""

import pytest
from rasterio.transform import from_origin

from landslide_pipeline.labelling.scene import ArraySource
from landslide_pipeline.synthetic import SyntheticScene, SyntheticSurveySpec, build_scene

PIT_SPEC = SyntheticSurveySpec(size_px=512, n_landslides=6, seed=11)


@pytest.fixture(scope="session")
def pit_scene() -> SyntheticScene:
    return build_scene(PIT_SPEC)


def array_source(scene: SyntheticScene, with_dem: bool = True, valid=None) -> ArraySource:
    transform = from_origin(*PIT_SPEC.origin, PIT_SPEC.pixel_size_m, PIT_SPEC.pixel_size_m)
    return ArraySource(scene.image, scene.dem if with_dem else None, transform, PIT_SPEC.crs, valid=valid)
