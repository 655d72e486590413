import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_pipeline.geo.survey import find_survey_files
from landslide_pipeline.geo.tiling import TilingSpec, tile_offsets, tile_survey
from landslide_pipeline.schemas import TileIndex
from landslide_pipeline_tests.conftest import ORIGIN, write_raster


def test_offsets_snap_the_last_tile_inside_the_scene():
    assert tile_offsets(300, 128, 128) == [0, 128, 172]
    assert tile_offsets(256, 128, 128) == [0, 128]
    assert tile_offsets(256, 128, 64) == [0, 64, 128]
    with pytest.raises(ValueError, match="smaller than the tile size"):
        tile_offsets(100, 128, 128)


def test_tiles_keep_transforms_pixel_to_map_round_trip(small_survey, tmp_path):
    out = tmp_path / "tiles"
    index = tile_survey("tiny", find_survey_files(small_survey), out, TilingSpec(tile_size=64))
    TileIndex.validate(index)
    assert len(index) == 4 * 5  # 200 -> 0,64,128,136 ; 300 -> 0,64,128,192,236
    with rasterio.open(small_survey / "image.tif") as scene:
        scene_pixels = scene.read()
        for tile in index.sample(5, random_state=0).itertuples():
            with rasterio.open(out / "image" / f"{tile.tile_id}.tif") as src:
                assert src.crs == scene.crs
                r, c = 17, 41
                x, y = src.xy(r, c)
                assert (x, y) == scene.xy(tile.row_off + r, tile.col_off + c)
                np.testing.assert_array_equal(src.read()[:, r, c], scene_pixels[:, tile.row_off + r, tile.col_off + c])
    assert index.crs == "EPSG:32650"


def test_terrain_tiles_hold_elevation_and_slope(small_survey, tmp_path):
    index = tile_survey("tiny", find_survey_files(small_survey), tmp_path / "t", TilingSpec(tile_size=64))
    with rasterio.open(tmp_path / "t" / "terrain" / f"{index.tile_id.iloc[0]}.tif") as src:
        elevation, slope = src.read()
        assert src.descriptions == ("elevation", "slope")
    # dz/dx = 0.5 m per m -> atan(0.5) = 26.57 degrees everywhere, edges included (margin read)
    np.testing.assert_allclose(slope, np.degrees(np.arctan(0.5)), atol=0.05)
    assert elevation[0, 1] - elevation[0, 0] == pytest.approx(0.25, abs=1e-3)


def test_dem_in_another_crs_and_resolution_is_resampled_onto_the_image(small_survey, tmp_path):
    # Rewrite the DEM at 2 m pixels in geographic coordinates: the tiler must reproject it.
    from rasterio.warp import calculate_default_transform, reproject, Resampling

    with rasterio.open(small_survey / "dem.tif") as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                                               *src.bounds, resolution=2e-5)
        dem = np.zeros((height, width), dtype=np.float32)
        reproject(rasterio.band(src, 1), dem, dst_transform=transform, dst_crs="EPSG:4326",
                  resampling=Resampling.bilinear)
    # Pad with a margin so the geographic DEM covers the image fully.
    (small_survey / "dem.tif").unlink()
    write_raster(small_survey / "dem.tif", dem[None], crs="EPSG:4326", transform=transform)
    index = tile_survey("tiny", find_survey_files(small_survey), tmp_path / "t", TilingSpec(tile_size=64))
    middle = index[(index.row_off == 64) & (index.col_off == 128)].tile_id.iloc[0]
    with rasterio.open(tmp_path / "t" / "terrain" / f"{middle}.tif") as src:
        _, slope = src.read()
    assert np.nanmedian(slope) == pytest.approx(np.degrees(np.arctan(0.5)), abs=1.0)


def test_nodata_tiles_are_skipped(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    image = np.full((3, 128, 256), 50, dtype=np.uint8)
    image[:, :, 128:] = 0  # right half is nodata
    write_raster(folder / "image.tif", image, nodata=0)
    index = tile_survey("s", find_survey_files(folder), tmp_path / "t", TilingSpec(tile_size=64))
    assert set(index.col_off) == {0, 64}
    assert (index.nodata_fraction == 0).all()
