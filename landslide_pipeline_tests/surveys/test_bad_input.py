"""Bad survey input: every error names the file and the problem (issue 3, item 5)."""

import json

import geopandas as gpd
import numpy as np
import pytest
from rasterio.transform import from_origin
from shapely.geometry import box

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.tiling import TilingSpec
from landslide_pipeline.layout import InvalidSurveyIdError
from landslide_pipeline.surveys import open_survey
from landslide_pipeline_tests.conftest import ORIGIN, UTM, write_raster


def tiled_image(path, size=256, block=64):
    """A tiled GeoTIFF whose directory sits before its pixels, as GDAL writes one."""
    import rasterio

    pixels = np.random.default_rng(0).integers(0, 255, (3, size, size), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=UTM,
                       transform=from_origin(*ORIGIN, 0.5, 0.5), tiled=True, blockxsize=block,
                       blockysize=block) as dst:
        dst.write(pixels)
    return path


def test_a_file_that_is_no_tiff_at_all(small_survey):
    (small_survey / "image.tif").write_bytes(b"not a tiff, just text")
    with pytest.raises(SurveyInputError, match="image.tif: cannot read raster"):
        open_survey(small_survey, "tiny").inspect()


def test_a_tiff_truncated_after_its_header_fails_while_tiling(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    data = tiled_image(folder / "image.tif").read_bytes()
    (folder / "image.tif").write_bytes(data[: len(data) // 2])
    survey = open_survey(folder)
    survey.inspect()  # the header is intact: only reading the pixels can tell
    with pytest.raises(SurveyInputError, match=r"image.tif: cannot read pixels in rows .*corrupt or truncated"):
        survey.tile(tmp_path / "tiles", TilingSpec(64))


def test_an_image_without_crs_while_its_labels_have_one(small_survey):
    write_raster(small_survey / "image.tif", np.zeros((3, 200, 300), np.uint8), crs=None,
                 transform=from_origin(0, 200, 1, 1))
    (small_survey / "dem.tif").unlink()
    with pytest.raises(SurveyInputError, match="image.tif: image has no CRS but its labels landslides.gpkg are in "
                                               "EPSG:32650"):
        open_survey(small_survey, "tiny").inspect()


def test_an_image_without_crs_cannot_take_a_dem(small_survey):
    write_raster(small_survey / "image.tif", np.zeros((3, 200, 300), np.uint8), crs=None,
                 transform=from_origin(0, 200, 1, 1))
    with pytest.raises(SurveyInputError, match="image has no CRS, so the DEM cannot be placed on it"):
        open_survey(small_survey, "tiny").inspect()


def test_labelme_labels_drawn_on_another_image_size(small_survey):
    (small_survey / "landslides.gpkg").unlink()
    (small_survey / "landslides.json").write_text(json.dumps({"imageHeight": 100, "imageWidth": 300, "shapes": []}))
    with pytest.raises(SurveyInputError, match="landslides.json: Labelme image is 100x300 px but the survey "
                                               "image is 200x300 px"):
        open_survey(small_survey, "tiny").inspect()


def test_labels_far_away_in_another_crs_do_not_overlap(small_survey):
    far = gpd.GeoDataFrame({"id": [1]}, geometry=[box(10.0, 10.0, 10.001, 10.001)], crs="EPSG:4326")
    (small_survey / "landslides.gpkg").unlink()
    far.to_file(small_survey / "landslides.geojson")
    with pytest.raises(SurveyInputError, match="landslides.geojson: labels do not overlap the image"):
        open_survey(small_survey, "tiny").inspect()


def test_an_unsupported_int32_image(small_survey):
    write_raster(small_survey / "image.tif", np.zeros((3, 50, 50), np.int32))
    with pytest.raises(SurveyInputError, match="image.tif: unsupported dtype int32"):
        open_survey(small_survey, "tiny").inspect()


def test_a_missing_file_named_in_the_config(small_survey):
    (small_survey / "survey.toml").write_text('dem = "lidar.tif"\n')
    with pytest.raises(SurveyInputError, match="lidar.tif: DEM not found"):
        open_survey(small_survey)


def test_a_scene_smaller_than_a_tile(small_survey, tmp_path):
    with pytest.raises(SurveyInputError, match=r"image.tif: 300x200 px scene: .*smaller than the tile size 256"):
        open_survey(small_survey, "tiny").tile(tmp_path / "t", TilingSpec(256))


@pytest.mark.parametrize("survey_id", ["../etc", "a/b", "..", ".hidden", "a\\b"])
def test_survey_ids_with_separators_or_dots_are_refused(small_survey, survey_id):
    with pytest.raises(InvalidSurveyIdError, match="invalid survey id"):
        open_survey(small_survey, survey_id).inspect()
