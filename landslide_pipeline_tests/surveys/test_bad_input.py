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


# Issue 14: every bad input fails early, naming the file and the problem.


def replace_labels(folder, name, text):
    (folder / "landslides.gpkg").unlink()
    (folder / name).write_text(text)


def geojson(*rings):
    features = [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
                for ring in rings]
    return json.dumps({"type": "FeatureCollection", "features": features,
                       "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}}})


def test_an_empty_label_layer_is_a_survey_without_landslides(small_survey, tmp_path):
    (small_survey / "landslides.gpkg").unlink()
    gpd.GeoDataFrame({"landslide_id": []}, geometry=[], crs=UTM).to_file(small_survey / "landslides.gpkg")
    survey = open_survey(small_survey, "tiny")
    assert survey.inspect().n_label_polygons == 0
    labelled = survey.label(survey.tile(tmp_path / "t", TilingSpec(64)), tmp_path / "l")
    assert len(labelled) == 20 and (labelled["landslide_fraction"] == 0).all()
    import rasterio

    with rasterio.open(tmp_path / "l" / "masks" / f"{labelled.tile_id.iloc[0]}.tif") as src:
        assert not src.read(1).any()


def test_a_geopackage_without_any_layer(small_survey):
    import sqlite3

    with sqlite3.connect(small_survey / "landslides.gpkg") as db:  # what is left when every layer is deleted
        for table in ("landslides", "rtree_landslides_geom"):
            db.execute(f"DROP TABLE {table}")
        db.execute("DELETE FROM gpkg_contents")
        db.execute("DELETE FROM gpkg_geometry_columns")
    with pytest.raises(SurveyInputError, match="landslides.gpkg: the GeoPackage holds no layer. A survey without "
                                               "landslides takes a layer without any feature"):
        open_survey(small_survey, "tiny").inspect()


def test_an_unclosed_geojson_ring_names_the_feature(small_survey):
    x0, y0 = ORIGIN
    closed = [[x0 + 20, y0 - 40], [x0 + 40, y0 - 40], [x0 + 40, y0 - 20], [x0 + 20, y0 - 40]]
    replace_labels(small_survey, "landslides.geojson", geojson(closed, closed[:-1]))
    with pytest.raises(SurveyInputError, match=r"landslides.geojson: feature 2 of 2 \(FID 1\) has invalid "
                                               r"coordinates: .*closed linestring"):
        open_survey(small_survey, "tiny").inspect()


def test_projected_coordinates_in_a_geojson_without_crs(small_survey):
    x0, y0 = ORIGIN
    ring = [[x0 + 20, y0 - 40], [x0 + 40, y0 - 40], [x0 + 40, y0 - 20], [x0 + 20, y0 - 40]]
    text = json.loads(geojson(ring))
    del text["crs"]  # RFC 7946: WGS 84 longitude/latitude
    replace_labels(small_survey, "landslides.geojson", json.dumps(text))
    with pytest.raises(SurveyInputError, match=r"landslides.geojson: coordinates \(500020, 4.39996e\+06\) .* are no "
                                               "longitude/latitude, but the labels' CRS EPSG:4326 is"):
        open_survey(small_survey, "tiny").inspect()


@pytest.mark.parametrize("text, problem", [
    ({"imageWidth": 300, "shapes": []}, r"not a Labelme file: missing imageHeight \("),
    ({"imageHeight": 200, "imageWidth": 300}, "not a Labelme file: missing shapes"),
    ({"version": "5.4.1", "imagePath": "image.tif", "shapes": []}, "not a Labelme file: missing imageHeight, "
                                                                   "imageWidth"),
    ({"imageHeight": 200, "imageWidth": 300, "shapes": {"label": "landslide"}}, "malformed Labelme file: shapes must be a list of objects"),
    ([1, 2], "neither Labelme JSON .* nor GeoJSON"),
    ('{"imageHeight": 200, "shapes": [', "invalid JSON at line 1, column 33"),
])
def test_malformed_labelme_json(small_survey, text, problem):
    replace_labels(small_survey, "landslides.json", text if isinstance(text, str) else json.dumps(text))
    with pytest.raises(SurveyInputError, match=f"landslides.json: {problem}"):
        open_survey(small_survey, "tiny").inspect()


@pytest.mark.parametrize("value, problem", [
    ("nan", r"NaN cannot mark nodata in uint8 imagery \(integer pixels are never NaN\); give a whole number in "
            r"0\.\.255"),
    ("300", r"300 is outside the uint8 range 0\.\.255"),
    ("-1", r"-1 is outside the uint8 range 0\.\.255"),
    ("0.5", "0.5 is no whole number"),
])
def test_a_nodata_override_no_pixel_can_hold(small_survey, value, problem):
    (small_survey / "survey.toml").write_text(f"nodata = {value}\n")
    with pytest.raises(SurveyInputError, match=f"survey.toml: nodata: {problem}"):
        open_survey(small_survey, "tiny").inspect()


def test_a_nan_nodata_override_is_fine_for_float_imagery(small_survey):
    write_raster(small_survey / "image.tif", np.ones((3, 200, 300), np.float32))
    (small_survey / "survey.toml").write_text("nodata = nan\n")
    assert open_survey(small_survey, "tiny").inspect().dtype == "float32"


@pytest.mark.parametrize("nodata", [-9999.0, None])
def test_a_dem_without_any_elevation_over_the_image(small_survey, nodata):
    fill = -9999.0 if nodata is not None else np.nan
    write_raster(small_survey / "dem.tif", np.full((1, 200, 300), fill, np.float32), nodata=nodata)
    with pytest.raises(SurveyInputError, match="dem.tif: DEM holds no elevation over the image: every pixel there "
                                               "is (nodata .-9999. or )?NaN"):
        open_survey(small_survey, "tiny").inspect()


def test_a_dem_mostly_without_elevation_is_taken_with_a_warning(small_survey):
    dem = np.full((1, 200, 300), 100.0, np.float32)
    dem[:, :, :210] = -9999.0
    write_raster(small_survey / "dem.tif", dem, nodata=-9999.0)
    with pytest.warns(UserWarning, match="dem.tif: DEM holds elevation over only 30% of the image"):
        assert open_survey(small_survey, "tiny").inspect().has_dem


def test_nan_in_one_band_of_a_float_image_is_nodata(tmp_path):
    import rasterio

    folder = tmp_path / "float"
    folder.mkdir()
    rng = np.random.default_rng(3)
    image = rng.random((3, 256, 256), dtype=np.float32)
    holes = rng.random((256, 256)) < 0.01
    image[1][holes] = np.nan
    write_raster(folder / "image.tif", image)
    index = open_survey(folder).tile(tmp_path / "t", TilingSpec(64))
    assert len(index) == 16  # 256 px cut into 64 px tiles: no overlap, every pixel counted once
    assert index["nodata_fraction"].mean() == pytest.approx(holes.mean())
    written = 0
    for tile in index.itertuples():
        with rasterio.open(tmp_path / "t" / "image" / f"{tile.tile_id}.tif") as src:
            pixels = src.read()
        assert np.isnan(pixels[1]).mean() == pytest.approx(tile.nodata_fraction)
        assert not np.isnan(pixels[[0, 2]]).any()
        written += int(np.isnan(pixels[1]).sum())
    assert written == holes.sum()


def test_non_finite_in_any_float_band_is_nodata_but_a_nodata_value_must_fill_every_band():
    from landslide_pipeline.geo.rasters import invalid_pixels

    pixels = np.array([[1.0, np.nan, 0.0, 0.0, 5.0], [2.0, 3.0, np.inf, 0.0, 0.0]], np.float32)[:, None, :]
    assert invalid_pixels(pixels, None)[0].tolist() == [False, True, True, False, False]
    assert invalid_pixels(pixels, 0.0)[0].tolist() == [False, True, True, True, False]
    assert invalid_pixels(np.zeros((2, 1, 5), np.uint8), None) is None
