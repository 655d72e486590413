import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.surveys import fingerprint, open_survey
from landslide_pipeline_tests.conftest import ORIGIN, UTM, write_raster


def test_metadata_of_a_valid_survey(small_survey):
    meta = open_survey(small_survey, "tiny").inspect()
    assert (meta.width, meta.height, meta.bands, meta.dtype) == (300, 200, 3, "uint8")
    assert meta.crs == "EPSG:32650"
    assert meta.resolution_m == (0.5, 0.5)
    assert meta.has_dem and meta.n_label_polygons == 1


def test_missing_image_names_the_file(tmp_path):
    with pytest.raises(SurveyInputError, match="image.tif"):
        open_survey(tmp_path)


def test_image_without_crs(small_survey):
    write_raster(small_survey / "image.tif", np.zeros((3, 50, 50), np.uint8), crs=None)
    with pytest.raises(SurveyInputError, match="no CRS"):
        open_survey(small_survey, "tiny").inspect()


def test_truncated_tiff_is_reported_with_its_path(small_survey):
    data = (small_survey / "image.tif").read_bytes()
    (small_survey / "image.tif").write_bytes(data[:200])
    with pytest.raises(SurveyInputError, match="image.tif: cannot read raster"):
        open_survey(small_survey, "tiny").inspect()


def test_dem_that_does_not_cover_the_image(small_survey):
    write_raster(small_survey / "dem.tif", np.zeros((1, 20, 20), np.float32))
    with pytest.raises(SurveyInputError, match="dem.tif: DEM bounds"):
        open_survey(small_survey, "tiny").inspect()


def test_labels_that_do_not_overlap_the_image(small_survey):
    far = box(ORIGIN[0] + 5000, ORIGIN[1] + 5000, ORIGIN[0] + 5010, ORIGIN[1] + 5010)
    gpd.GeoDataFrame({"id": [1]}, geometry=[far], crs=UTM).to_file(small_survey / "landslides.gpkg")
    with pytest.raises(SurveyInputError, match="do not overlap"):
        open_survey(small_survey, "tiny").inspect()


def test_unsupported_dtype(small_survey):
    write_raster(small_survey / "image.tif", np.zeros((3, 50, 50), np.int8))
    with pytest.raises(SurveyInputError, match="unsupported dtype int8"):
        open_survey(small_survey, "tiny").inspect()


def test_fingerprint_changes_with_content(small_survey):
    survey = open_survey(small_survey)
    before = fingerprint(survey.files())
    assert fingerprint(survey.files()) == before
    write_raster(small_survey / "dem.tif", np.ones((1, 200, 300), np.float32))
    assert fingerprint(survey.files()) != before
