import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Polygon, box

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.labels import read_label_polygons, write_label_masks
from landslide_pipeline.geo.survey import find_survey_files
from landslide_pipeline.geo.tiling import TilingSpec, tile_survey
from landslide_pipeline_tests.conftest import ORIGIN, UTM


def test_masks_burn_polygons_at_the_right_pixels(small_survey, tmp_path):
    index = tile_survey("tiny", find_survey_files(small_survey), tmp_path / "t", TilingSpec(tile_size=64))
    polygons = read_label_polygons(small_survey / "landslides.gpkg", index.crs)
    labelled = write_label_masks(index, polygons, tmp_path / "l")
    first = labelled.set_index("tile_id").loc["r000000_c000000"]
    import rasterio

    with rasterio.open(tmp_path / "l" / "masks" / "r000000_c000000.tif") as src:
        mask = src.read(1)
    # box from x0+20..x0+40 and y0-40..y0-20 at 0.5 m -> rows 40..79, cols 40..79; tile holds 40..63
    expected = np.zeros((64, 64), dtype=np.uint8)
    expected[40:64, 40:64] = 1
    np.testing.assert_array_equal(mask, expected)
    assert first.landslide_fraction == pytest.approx(24 * 24 / 64**2)
    assert labelled.landslide_fraction.sum() * 64**2 == pytest.approx(40 * 40)


def test_labels_in_another_crs_are_reprojected(small_survey, tmp_path):
    gdf = gpd.read_file(small_survey / "landslides.gpkg").to_crs("EPSG:4326")
    gdf.to_file(small_survey / "landslides.gpkg")
    polygons = read_label_polygons(small_survey / "landslides.gpkg", UTM)
    assert polygons.crs == UTM
    x0, y0 = ORIGIN
    assert polygons.geometry.iloc[0].symmetric_difference(box(x0 + 20, y0 - 40, x0 + 40, y0 - 20)).area < 0.01


def test_invalid_and_empty_geometries_are_repaired_or_dropped(tmp_path):
    x0, y0 = ORIGIN
    bowtie = Polygon([(x0, y0), (x0 + 10, y0 - 10), (x0 + 10, y0), (x0, y0 - 10)])
    gdf = gpd.GeoDataFrame({"id": [1, 2]}, geometry=[bowtie, Polygon()], crs=UTM)
    gdf.to_file(tmp_path / "l.gpkg")
    polygons = read_label_polygons(tmp_path / "l.gpkg", UTM)
    assert len(polygons) == 1
    assert polygons.geometry.is_valid.all()
    assert polygons.geometry.iloc[0].area == pytest.approx(50.0)


def test_labels_without_any_polygon_raise(tmp_path):
    gpd.GeoDataFrame({"id": [1]}, geometry=[Polygon()], crs=UTM).to_file(tmp_path / "l.gpkg")
    with pytest.raises(SurveyInputError, match="no valid polygon"):
        read_label_polygons(tmp_path / "l.gpkg", UTM)
