from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from pyproj import Geod
from rasterio.transform import from_origin
from shapely.geometry import box

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.mapping import (
    PROBABILITY_NODATA,
    PROBABILITY_SCALE,
    VectorizeSpec,
    landslide_polygons,
    vectorize_landslides,
)
from landslide_pipeline_tests.conftest import ORIGIN, UTM, write_raster

RES = 0.5
EXACT = VectorizeSpec(min_area_m2=0.0, simplify_m=0.0)


def rasters(folder: Path, mask: np.ndarray, probability: np.ndarray, crs=UTM, transform=None) -> tuple[Path, Path]:
    """Writes a hand-made mask and its probabilities (encoded as the mapping writes them)."""
    transform = transform or from_origin(*ORIGIN, RES, RES)
    stored = np.rint(probability * PROBABILITY_SCALE).astype(np.uint8)
    stored[mask == 255] = PROBABILITY_NODATA
    mask_path = write_raster(folder / "mask.tif", mask.astype(np.uint8), crs=crs, transform=transform, nodata=255)
    probability_path = write_raster(folder / "probability.tif", stored, crs=crs, transform=transform,
                                    nodata=PROBABILITY_NODATA)
    with rasterio.open(probability_path, "r+") as dst:
        dst.scales = (1 / PROBABILITY_SCALE,)
    return mask_path, probability_path


def two_squares() -> tuple[np.ndarray, np.ndarray]:
    """A 10 x 10 px landslide (5 x 5 m) of probability 0.8 with one pixel of 0.6, and a 4 x 4 px one
    (2 x 2 m) of 0.6, on a 0.2 background."""
    mask = np.zeros((40, 40), dtype=np.uint8)
    probability = np.full((40, 40), 0.2)
    mask[5:15, 5:15] = 1
    probability[5:15, 5:15] = 0.8
    probability[5, 5] = 0.6
    mask[25:29, 30:34] = 1
    probability[25:29, 30:34] = 0.6
    return mask, probability


def test_areas_perimeters_and_mean_probabilities(tmp_path):
    mask, probability = rasters(tmp_path, *two_squares())
    frame = vectorize_landslides(mask, probability, tmp_path / "landslides.gpkg", EXACT)
    assert list(frame.landslide_id) == [1, 2]  # top to bottom
    np.testing.assert_allclose(frame.area_m2, [25.0, 4.0])
    np.testing.assert_allclose(frame.perimeter_m, [20.0, 8.0])
    np.testing.assert_array_equal(frame.pixels, [100, 16])
    big = (99 * np.rint(0.8 * 254) + np.rint(0.6 * 254)) / 100 / 254
    np.testing.assert_allclose(frame.mean_probability, [big, np.rint(0.6 * 254) / 254])
    x0, y0 = ORIGIN
    assert frame.geometry.iloc[0].equals(box(x0 + 2.5, y0 - 7.5, x0 + 7.5, y0 - 2.5))


def test_the_geopackage_opens_with_its_layer_and_crs(tmp_path):
    mask, probability = rasters(tmp_path, *two_squares())
    out = tmp_path / "landslides.gpkg"
    vectorize_landslides(mask, probability, out, EXACT)
    # The polygons, and QGIS's table of layer styles (the landslides' default style, mapping.styles).
    assert pyogrio.list_layers(out).tolist() == [["landslides", "Polygon"], ["layer_styles", None]]
    written = gpd.read_file(out, layer="landslides")
    assert written.crs == UTM
    assert list(written.columns) == ["landslide_id", "area_m2", "perimeter_m", "mean_probability", "pixels", "geometry"]
    np.testing.assert_allclose(written.geometry.area, written.area_m2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landslides.gpkg", "mask.tif", "probability.tif"]


def test_polygons_under_the_minimum_area_are_dropped(tmp_path):
    mask, probability = rasters(tmp_path, *two_squares())
    frame = landslide_polygons(mask, probability, VectorizeSpec(min_area_m2=5.0, simplify_m=0.0))
    assert list(frame.area_m2) == [25.0] and list(frame.landslide_id) == [1]


def ring_and_diagonals() -> tuple[np.ndarray, np.ndarray]:
    """A ring with a hole spanning many rows, and two pixels touching only at a corner."""
    mask = np.zeros((30, 30), dtype=np.uint8)
    mask[2:20, 2:20] = 1
    mask[8:12, 8:12] = 0  # the hole
    mask[24, 24] = mask[25, 25] = 1
    rng = np.random.default_rng(0)
    return mask, rng.random((30, 30))


@pytest.mark.parametrize("strip_rows", [1, 3, 7, 25])
def test_strips_give_the_same_polygons_as_one_pass(tmp_path, strip_rows):
    mask, probability = rasters(tmp_path, *ring_and_diagonals())
    whole = landslide_polygons(mask, probability, EXACT)
    strips = landslide_polygons(mask, probability, VectorizeSpec(min_area_m2=0, simplify_m=0, strip_rows=strip_rows))
    assert len(whole) == len(strips) == 3  # corner-touching pixels stay two landslides
    np.testing.assert_array_equal(strips.pixels, [18 * 18 - 16, 1, 1])
    np.testing.assert_allclose(strips.area_m2, whole.area_m2)
    np.testing.assert_allclose(strips.mean_probability, whole.mean_probability)
    for a, b in zip(strips.geometry, whole.geometry):
        assert a.symmetric_difference(b).area == 0
    assert len(strips.geometry.iloc[0].interiors) == 1


def test_nodata_in_the_mask_is_not_a_landslide(tmp_path):
    mask, probability = two_squares()
    mask[20:, :] = 255  # over the small landslide
    frame = landslide_polygons(*rasters(tmp_path, mask, probability), EXACT)
    assert list(frame.pixels) == [100]


def test_simplification_smooths_the_pixel_staircase(tmp_path):
    mask = np.tril(np.ones((40, 40), dtype=np.uint8))  # a triangle with a 40-step staircase
    paths = rasters(tmp_path, mask, np.full((40, 40), 0.9))
    exact = landslide_polygons(*paths, EXACT).geometry.iloc[0]
    simple = landslide_polygons(*paths, VectorizeSpec(min_area_m2=0, simplify_m=RES)).geometry.iloc[0]
    assert shapely.get_num_coordinates(simple) < 10 < shapely.get_num_coordinates(exact)
    assert simple.area == pytest.approx(exact.area, rel=0.05) and simple.is_valid


def test_a_geographic_mask_is_measured_in_metres(tmp_path):
    res_deg = 1e-5
    transform = from_origin(117.0, 40.0, res_deg, res_deg)
    mask, probability = two_squares()
    frame = landslide_polygons(*rasters(tmp_path, mask, probability, crs="EPSG:4326", transform=transform), EXACT)
    assert frame.crs == "EPSG:4326"
    geodesic_area, geodesic_perimeter = Geod(ellps="WGS84").geometry_area_perimeter(frame.geometry.iloc[0])
    assert frame.area_m2.iloc[0] == pytest.approx(abs(geodesic_area), rel=2e-3)
    assert frame.perimeter_m.iloc[0] == pytest.approx(geodesic_perimeter, rel=2e-3)
    assert 80 < frame.area_m2.iloc[0] < 95  # 10 x 10 px of about 0.85 m x 1.11 m


def test_a_feet_crs_is_converted_to_square_metres(tmp_path):
    transform = from_origin(6_000_000.0, 2_000_000.0, 1.0, 1.0)  # 1 US survey foot pixels
    mask, probability = two_squares()
    frame = landslide_polygons(*rasters(tmp_path, mask, probability, crs="EPSG:2227", transform=transform), EXACT)
    foot = 1200 / 3937
    np.testing.assert_allclose(frame.area_m2, [100 * foot**2, 16 * foot**2])
    np.testing.assert_allclose(frame.perimeter_m, [40 * foot, 16 * foot])


def test_an_empty_mask_gives_an_empty_layer(tmp_path):
    paths = rasters(tmp_path, np.zeros((20, 20), dtype=np.uint8), np.zeros((20, 20)))
    vectorize_landslides(*paths, tmp_path / "none.gpkg")
    written = gpd.read_file(tmp_path / "none.gpkg", layer="landslides")
    assert len(written) == 0 and written.crs == UTM


def test_a_mask_without_crs_is_refused(tmp_path):
    paths = rasters(tmp_path, *two_squares(), crs=None)
    with pytest.raises(SurveyInputError, match="mask.tif: has no CRS"):
        landslide_polygons(*paths)


def test_rasters_on_different_grids_are_refused(tmp_path):
    mask, _ = rasters(tmp_path, *two_squares())
    other = write_raster(tmp_path / "other.tif", np.zeros((40, 41), dtype=np.uint8))
    with pytest.raises(SurveyInputError, match="other.tif: is not on the grid of the mask"):
        landslide_polygons(mask, other)
