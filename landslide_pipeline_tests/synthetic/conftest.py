"""A generated survey and its landslide-free baseline, shared by the synthetic survey tests."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landslide_pipeline.synthetic import (
    SyntheticScene,
    SyntheticSurvey,
    SyntheticSurveySpec,
    build_scene,
    generate_survey,
)

SPEC = SyntheticSurveySpec(size_px=384, n_landslides=4, seed=3)
SMALL = SyntheticSurveySpec(size_px=256, n_landslides=3, seed=5)


@pytest.fixture(scope="package")
def survey(tmp_path_factory) -> SyntheticSurvey:
    return generate_survey(tmp_path_factory.mktemp("synthetic") / "pit", SPEC)


@pytest.fixture(scope="package")
def baseline() -> SyntheticScene:
    """The same scene without landslides: every other component draws from its own stream."""
    return build_scene(replace(SPEC, n_landslides=0))


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read().squeeze()


def slope_deg(dem: np.ndarray, pixel_size: float) -> np.ndarray:
    dz_dy, dz_dx = np.gradient(dem.astype(np.float64), pixel_size)
    return np.degrees(np.arctan(np.hypot(dz_dx, dz_dy)))
