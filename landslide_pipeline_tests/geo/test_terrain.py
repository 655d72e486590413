import math

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_pipeline.geo.terrain import hillshade, local_relief, pixel_size_m, slope_degrees, terrain_bands


def plane(rise_east: float, rise_south: float, shape=(40, 40), res=1.0) -> np.ndarray:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return (rise_east * cols * res + rise_south * rows * res).astype(np.float32)


def test_pixel_size_in_metres_for_feet_and_degree_crs():
    feet = pixel_size_m(CRS.from_epsg(2230), from_origin(6e6, 2e6, 1.0, 1.0), 0, 0)
    assert feet == pytest.approx((0.3048006, 0.3048006))
    # At 60 degrees north a degree of longitude is half as long as one of latitude.
    x, y = pixel_size_m(CRS.from_epsg(4326), from_origin(10.0, 60.0, 1e-5, 1e-5), 0, 0)
    assert y == pytest.approx(1.1132, rel=1e-3) and x == pytest.approx(y / 2, rel=1e-3)


def test_hillshade_lights_slopes_facing_the_north_west_sun():
    facing_sun = hillshade(plane(0.5, 0.5), 1.0, 1.0)  # rises to the south-east: faces north-west
    facing_away = hillshade(plane(-0.5, -0.5), 1.0, 1.0)
    flat = hillshade(plane(0.0, 0.0), 1.0, 1.0)
    np.testing.assert_allclose(flat, math.sin(math.radians(45)), atol=1e-6)
    assert facing_sun.mean() > flat.mean() > facing_away.mean()
    slope = math.atan(math.hypot(0.5, 0.5))
    np.testing.assert_allclose(facing_sun[5:-5, 5:-5], math.cos(math.radians(45) - slope), atol=1e-5)


def test_relief_and_slope_of_a_plane():
    elevation = plane(0.2, 0.0, res=0.5)
    np.testing.assert_allclose(local_relief(elevation, 3)[10:-10, 10:-10], 0.2 * 6 * 0.5, atol=1e-5)
    np.testing.assert_allclose(slope_degrees(elevation, 0.5, 0.5), math.degrees(math.atan(0.2)), atol=1e-4)


def test_terrain_bands_extrapolate_a_margin_outside_the_dem():
    elevation = np.pad(plane(0.3, 0.0, shape=(20, 20)), 2, constant_values=np.nan)
    bands = terrain_bands(elevation, (1.0, 1.0), margin=2, bands=("elevation", "slope", "relief"),
                          relief_radius_m=2.0)
    assert bands.shape == (3, 20, 20)
    np.testing.assert_allclose(bands[1], math.degrees(math.atan(0.3)), atol=1e-4)
    np.testing.assert_allclose(bands[2], 0.3 * 4, atol=1e-4)
