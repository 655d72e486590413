import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Polygon, box

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.labels import drop_empty_tiles, read_label_polygons, write_label_masks
from landslide_pipeline.geo.tiling import TilingSpec
from landslide_pipeline.surveys import open_survey
from landslide_pipeline_tests.conftest import ORIGIN, UTM, write_raster


def test_masks_burn_polygons_at_the_right_pixels(small_survey, tmp_path):
    index = open_survey(small_survey, "tiny").tile(tmp_path / "t", TilingSpec(tile_size=64))
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


@pytest.mark.parametrize("name, driver", [("landslides.geojson", "GeoJSON"), ("landslides.shp", "ESRI Shapefile")])
def test_geojson_and_shapefile_labels_burn_like_the_geopackage(small_survey, tmp_path, name, driver):
    import rasterio

    polygons = gpd.read_file(small_survey / "landslides.gpkg").to_crs("EPSG:4326")
    polygons = polygons.rename(columns={"landslide_id": "id"})
    (small_survey / "landslides.gpkg").unlink()
    polygons.to_file(small_survey / name, driver=driver)
    survey = open_survey(small_survey)
    assert survey.labels.path.name == name
    index = survey.tile(tmp_path / "t", TilingSpec(tile_size=64))
    labelled = survey.label(index, tmp_path / "l")
    assert labelled.landslide_fraction.sum() * 64**2 == pytest.approx(40 * 40, abs=2)
    with rasterio.open(tmp_path / "l" / "masks" / "r000000_c000000.tif") as src:
        assert src.read(1)[40:64, 40:64].all() and not src.read(1)[:38].any()


def test_labelme_labels_of_a_scene_without_crs(tmp_path):
    import json

    import rasterio

    folder = tmp_path / "photo"
    folder.mkdir()
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):  # a plain photo: no map coordinates
        write_raster(folder / "image.tif", np.zeros((3, 64, 96), np.uint8), crs=None,
                     transform=rasterio.transform.Affine.identity())
    shape = {"label": "landslide", "shape_type": "rectangle", "points": [[40, 10], [69, 29]], "flags": {}}
    road = {"label": "road", "shape_type": "polygon", "points": [[0, 0], [10, 0], [10, 10]], "flags": {}}
    (folder / "landslides.json").write_text(json.dumps(
        {"shapes": [shape, road], "imageHeight": 64, "imageWidth": 96, "imagePath": "image.tif"}))
    survey = open_survey(folder)
    assert survey.labels.format == "labelme"
    assert survey.inspect().n_label_polygons == 1
    index = survey.tile(tmp_path / "t", TilingSpec(tile_size=32))
    labelled = survey.label(index, tmp_path / "l").set_index("tile_id")
    # Labelme's rectangle covers columns 40..69 and rows 10..29 inclusive: 30 x 20 pixels.
    assert labelled.landslide_fraction.sum() * 32**2 == pytest.approx(30 * 20)
    with rasterio.open(tmp_path / "l" / "masks" / "r000000_c000064.tif") as src:
        mask = src.read(1)
    expected = np.zeros((32, 32), np.uint8)
    expected[10:30, 0:6] = 1
    np.testing.assert_array_equal(mask, expected)


def test_lines_and_points_are_not_landslides(tmp_path):
    from shapely.geometry import LineString, Point

    x0, y0 = ORIGIN
    gdf = gpd.GeoDataFrame({"id": [1, 2, 3]}, geometry=[LineString([(x0, y0), (x0 + 5, y0)]), Point(x0, y0), None],
                           crs=UTM)
    gdf.to_file(tmp_path / "l.gpkg")
    with pytest.raises(SurveyInputError, match=r"l.gpkg: labels hold no valid polygon \(found .*LineString.*Point"):
        read_label_polygons(tmp_path / "l.gpkg", UTM)


def test_drop_empty_tiles_keeps_a_seeded_share_and_deletes_the_rest(tmp_path):
    import pandas as pd

    masks = tmp_path / "masks"
    masks.mkdir()
    labelled = pd.DataFrame({"tile_id": [f"t{i}" for i in range(10)],
                             "landslide_fraction": [0.0] * 8 + [0.2, 0.001]})
    for tile_id in labelled.tile_id:
        (masks / f"{tile_id}.tif").touch()
    kept = drop_empty_tiles(labelled, masks, min_landslide_fraction=0.001, keep_empty_fraction=0.25, seed=3)
    assert len(kept) == 1 + round(0.25 * 9)
    assert "t8" in set(kept.tile_id)  # the only tile above the threshold
    assert sorted(p.stem for p in masks.iterdir()) == sorted(kept.tile_id)
    again = drop_empty_tiles(labelled, tmp_path, keep_empty_fraction=1.0)
    assert again.equals(labelled)


@pytest.mark.parametrize("content", ["<OGRVRTDataSource/>", "name,geometry\nx,POINT(0 0)\n"])
def test_label_files_of_other_kinds_are_refused_before_gdal_probes_them(tmp_path, content):
    path = tmp_path / "landslides.gpkg"
    path.write_text(content)
    with pytest.raises(SurveyInputError, match=r"landslides.gpkg: not a GeoPackage, Shapefile or GeoJSON file"):
        read_label_polygons(path, None)
