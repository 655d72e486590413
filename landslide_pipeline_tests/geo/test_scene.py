"""The one scene reader: band selection, nodata precedence, DEM on the image grid."""

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.scene import SceneFiles, SceneReader
from landslide_pipeline.labelling.scene import RasterSource
from landslide_pipeline_tests.conftest import write_raster


def rgba(path, nodata=None):
    """A 64 px RGBA image: band values 10, 20, 30; alpha 0 on the left half; red 0 on the top rows."""
    pixels = np.stack([np.full((64, 64), v, np.uint8) for v in (10, 20, 30, 255)])
    pixels[3, :, :32] = 0
    pixels[:3, :8] = 0
    write_raster(path, pixels, nodata=nodata)
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    return path


def test_alpha_marks_nodata_and_is_no_image_band(tmp_path):
    with SceneReader(SceneFiles((rgba(tmp_path / "a.tif"),))) as scene:
        image, invalid = scene.read(Window(0, 0, 64, 64))
    assert scene.bands == (1, 2, 3) and image.shape == (3, 64, 64)
    assert invalid[:, :32].all() and not invalid[:, 32:].any()


def test_a_nodata_override_wins_over_the_alpha_band(tmp_path):
    with SceneReader(SceneFiles((rgba(tmp_path / "a.tif"),), nodata=0)) as scene:
        _, invalid = scene.read(Window(0, 0, 64, 64))
    assert invalid[:8].all() and not invalid[8:].any()


def test_band_selection_is_checked_and_honoured(tmp_path):
    path = rgba(tmp_path / "a.tif")
    with SceneReader(SceneFiles((path,), bands=(3, 1))) as scene:
        image, _ = scene.read(Window(0, 8, 4, 4))
    assert scene.bands == (3, 1) and image[:, 0, 0].tolist() == [30, 10]
    with pytest.raises(SurveyInputError, match="has 4 band"), SceneReader(SceneFiles((path,), bands=(5,))):
        pass


def test_object_oriented_labelling_reads_the_survey_bands_and_nodata(tmp_path):
    """OBIA used to read every band and ignore survey.toml's nodata; it reads what tiling reads now."""
    path = rgba(tmp_path / "a.tif")
    with RasterSource(SceneFiles((path,), bands=(1, 2), nodata=0)) as source:
        window = source.read(0, 0, 64, 64)
    assert source.bands == ("red", "green") and window.image.shape == (2, 64, 64)
    assert not window.valid[:8].any() and window.valid[8:].all()


def test_elevation_needs_a_dem(tmp_path, small_survey):
    with SceneReader(SceneFiles((small_survey / "image.tif",))) as scene, \
            pytest.raises(SurveyInputError, match="no DEM"):
        scene.elevation(0, 0, 8, 8)
    with SceneReader(SceneFiles((small_survey / "image.tif",), small_survey / "dem.tif")) as scene:
        terrain = scene.terrain(0, 0, 8, 8, ("elevation", "slope"), 10.0)
    assert terrain.shape == (2, 8, 8)
    # The small survey's DEM rises 0.5 m per m eastwards: a slope of atan(0.5) everywhere.
    np.testing.assert_allclose(terrain[1], np.degrees(np.arctan(0.5)), atol=0.01)
