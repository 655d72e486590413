import numpy as np
import pytest
import rasterio

from landslide_pipeline.geo.tiling import TilingSpec, tile_offsets
from landslide_pipeline.schemas import TileIndex
from landslide_pipeline.surveys import open_survey
from landslide_pipeline_tests.conftest import write_raster


def test_offsets_snap_the_last_tile_inside_the_scene():
    assert tile_offsets(300, 128, 128) == [0, 128, 172]
    assert tile_offsets(256, 128, 128) == [0, 128]
    assert tile_offsets(256, 128, 64) == [0, 64, 128]
    with pytest.raises(ValueError, match="smaller than the tile size"):
        tile_offsets(100, 128, 128)


def test_tiles_keep_transforms_pixel_to_map_round_trip(small_survey, tmp_path):
    out = tmp_path / "tiles"
    index = open_survey(small_survey, "tiny").tile(out, TilingSpec(tile_size=64))
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
    index = open_survey(small_survey, "tiny").tile(tmp_path / "t", TilingSpec(tile_size=64))
    with rasterio.open(tmp_path / "t" / "terrain" / f"{index.tile_id.iloc[0]}.tif") as src:
        elevation, slope = src.read()
        assert src.descriptions == ("elevation", "slope")
    # dz/dx = 0.5 m per m -> atan(0.5) = 26.57 degrees everywhere, edges included (margin read)
    np.testing.assert_allclose(slope, np.degrees(np.arctan(0.5)), atol=0.05)
    assert elevation[0, 1] - elevation[0, 0] == pytest.approx(0.25, abs=1e-3)


def test_dem_in_another_crs_and_resolution_is_resampled_onto_the_image(small_survey, tmp_path):
    # Rewrite the DEM at 2 m pixels in geographic coordinates: the tiler must reproject it.
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(small_survey / "dem.tif") as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height,
                                                               *src.bounds, resolution=2e-5)
        dem = np.zeros((height, width), dtype=np.float32)
        reproject(rasterio.band(src, 1), dem, dst_transform=transform, dst_crs="EPSG:4326",
                  resampling=Resampling.bilinear)
    # Pad with a margin so the geographic DEM covers the image fully.
    (small_survey / "dem.tif").unlink()
    write_raster(small_survey / "dem.tif", dem[None], crs="EPSG:4326", transform=transform)
    index = open_survey(small_survey, "tiny").tile(tmp_path / "t", TilingSpec(tile_size=64))
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
    index = open_survey(folder, "s").tile(tmp_path / "t", TilingSpec(tile_size=64))
    assert set(index.col_off) == {0, 64}
    assert (index.nodata_fraction == 0).all()


def test_tiling_spec_refuses_sizes_the_models_cannot_take():
    with pytest.raises(ValueError, match="multiple of 32"):
        TilingSpec(tile_size=100)
    with pytest.raises(ValueError, match="stride"):
        TilingSpec(tile_size=64, stride=65)
    with pytest.raises(ValueError, match="compress"):
        TilingSpec(compress="jpeg")


def test_overlapping_tiles_with_a_stride(small_survey, tmp_path):
    index = open_survey(small_survey, "tiny").tile(tmp_path / "t", TilingSpec(tile_size=64, stride=48))
    assert sorted(set(index.row_off)) == [0, 48, 96, 136]
    assert sorted(set(index.col_off)) == [0, 48, 96, 144, 192, 236]
    with rasterio.open(small_survey / "image.tif") as scene:
        expected = scene.read(window=rasterio.windows.Window(144, 96, 64, 64))
    with rasterio.open(tmp_path / "t" / "image" / "r000096_c000144.tif") as src:
        np.testing.assert_array_equal(src.read(), expected)


def test_narrow_memory_budget_reads_column_groups_with_the_same_result(small_survey, tmp_path, monkeypatch):
    from landslide_pipeline.geo import tiling
    from landslide_pipeline.geo.scene import SceneReader

    scene = open_survey(small_survey).scene
    windows = []
    original = SceneReader.read_raw

    def spy(self, window, out=None):
        windows.append(window)
        return original(self, window, out)

    monkeypatch.setattr(SceneReader, "read_raw", spy)
    wide = tiling.tile_scene("tiny", scene, tmp_path / "wide", TilingSpec(tile_size=64))
    reads_wide = list(windows)
    windows.clear()
    narrow = tiling.tile_scene("tiny", scene, tmp_path / "narrow", TilingSpec(tile_size=64), max_buffer_bytes=60_000)
    assert wide.drop(columns="geometry").equals(narrow.drop(columns="geometry"))
    assert len({w.col_off for w in windows}) > 1 and {w.col_off for w in reads_wide} == {0}
    # Every source row of every column group is read exactly once.
    for col_off in {w.col_off for w in windows}:
        rows = sorted((int(w.row_off), int(w.row_off + w.height)) for w in windows if w.col_off == col_off)
        assert rows[0][0] == 0 and rows[-1][1] == 200
        assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
    for tile_id in wide.tile_id:
        with rasterio.open(tmp_path / "wide" / "image" / f"{tile_id}.tif") as a, \
                rasterio.open(tmp_path / "narrow" / "image" / f"{tile_id}.tif") as b:
            np.testing.assert_array_equal(a.read(), b.read())
            assert a.transform == b.transform


def test_alpha_band_marks_nodata_and_is_not_an_image_band(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    image = np.full((4, 64, 128), 200, dtype=np.uint8)
    image[3, :, 64:] = 0  # transparent right half
    path = write_raster(folder / "image.tif", image)
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                           rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    index = open_survey(folder, "s").tile(tmp_path / "t", TilingSpec(32, max_nodata_fraction=0.5))
    assert set(index.col_off) == {0, 32}
    with rasterio.open(tmp_path / "t" / "image" / f"{index.tile_id.iloc[0]}.tif") as src:
        assert src.count == 3


def test_nodata_override_and_other_dtypes(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    image = np.full((2, 64, 64), 1000, dtype=np.uint16)
    image[:, :, :32] = 65535  # a fill value the file does not declare
    write_raster(folder / "image.tif", image)
    (folder / "survey.toml").write_text("nodata = 65535\n")
    index = open_survey(folder, "s").tile(tmp_path / "t", TilingSpec(32, max_nodata_fraction=0.0))
    assert set(index.col_off) == {32}
    with rasterio.open(tmp_path / "t" / "image" / f"{index.tile_id.iloc[0]}.tif") as src:
        assert (src.dtypes[0], src.count, src.nodata) == ("uint16", 2, 65535)
    float_folder = tmp_path / "f"
    float_folder.mkdir()
    reflectance = np.random.default_rng(0).random((5, 64, 64)).astype(np.float32)
    reflectance[:, :32, :] = np.nan
    write_raster(float_folder / "image.tif", reflectance)
    index = open_survey(float_folder, "f").tile(tmp_path / "tf", TilingSpec(32))
    assert set(index.row_off) == {32}
    with rasterio.open(tmp_path / "tf" / "image" / "r000032_c000000.tif") as src:
        np.testing.assert_array_equal(src.read(), reflectance[:, 32:, :32])


def test_optional_terrain_bands_follow_elevation_and_slope(small_survey, tmp_path):
    (small_survey / "survey.toml").write_text('terrain_bands = ["hillshade", "relief"]\nrelief_radius_m = 2.0\n')
    index = open_survey(small_survey, "tiny").tile(tmp_path / "t", TilingSpec(tile_size=64))
    with rasterio.open(tmp_path / "t" / "terrain" / f"{index.tile_id.iloc[0]}.tif") as src:
        assert src.descriptions == ("elevation", "slope", "hillshade", "relief")
        elevation, slope, shade, relief = src.read()
    np.testing.assert_allclose(slope, np.degrees(np.arctan(0.5)), atol=0.05)
    # The plane rises 0.5 m per m eastwards: it faces west, half towards a north-west sun.
    assert 0.5 < float(np.median(shade)) < 1.0
    # Over +-2 m (4 px at 0.5 m) the relief of that plane is 0.5 m/m * 4 m = 2 m, edges included.
    np.testing.assert_allclose(relief, 2.0, atol=1e-3)


def test_prefetching_keeps_order_raises_the_readers_error_and_stops_when_closed():
    from contextlib import closing

    from landslide_pipeline.geo.tiling import _prefetched

    assert list(_prefetched(iter(range(5)))) == [0, 1, 2, 3, 4]

    def failing():
        yield 1
        raise OSError("block 7 unreadable")

    with pytest.raises(OSError, match="block 7"):
        list(_prefetched(failing()))
    produced = []

    def counting():
        for i in range(100):
            produced.append(i)
            yield i

    with closing(_prefetched(counting(), depth=2)) as items:
        assert next(items) == 0
    assert len(produced) <= 4  # stopped a few items ahead, not at the end
