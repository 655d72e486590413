import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_pipeline.geo.tile_writer import BackgroundWrites, TileProfile, TileWriter

CASES = [
    ("uint8", 0, CRS.from_epsg(32650), from_origin(500_000, 4_400_000, 0.1, 0.1)),
    ("uint16", None, CRS.from_epsg(2230), from_origin(6_000_000, 2_000_000, 0.5, 0.5)),  # US survey feet
    ("float32", math.nan, CRS.from_epsg(4326), from_origin(10.0, 50.0, 1e-5, 1e-5)),
    ("float64", None, None, Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)),  # a pre-cut tile's pixel grid
]


@pytest.mark.parametrize("dtype, nodata, crs, origin", CASES)
def test_fast_tiles_read_back_like_gdal_written_ones(tmp_path, dtype, nodata, crs, origin):
    profile = TileProfile(64, 96, 3, dtype, crs, nodata, ("red", None, "nir"))
    writer = TileWriter(profile, origin)
    assert writer._template is not None, "uncompressed tiles must take the fast path"
    pixels = (np.random.default_rng(1).random((3, 64, 96)) * 1000).astype(dtype)
    moved = origin @ Affine.translation(384, 1280)
    assert writer.transform(1280, 384) == moved
    writer.write(tmp_path / "fast.tif", pixels, 1280, 384)
    slow = TileWriter(TileProfile(64, 96, 3, dtype, crs, nodata, ("red", None, "nir"), compress="deflate"), origin)
    slow.write(tmp_path / "gdal.tif", pixels, 1280, 384)
    with rasterio.open(tmp_path / "fast.tif") as fast, rasterio.open(tmp_path / "gdal.tif") as gdal:
        assert fast.transform == gdal.transform == moved
        assert fast.crs == gdal.crs == crs
        assert fast.descriptions == gdal.descriptions == ("red", None, "nir")
        assert fast.nodata == gdal.nodata or (math.isnan(fast.nodata) and math.isnan(gdal.nodata))
        assert fast.dtypes == gdal.dtypes == (dtype,) * 3
        np.testing.assert_array_equal(fast.read(), pixels)
        np.testing.assert_array_equal(gdal.read(), pixels)


def test_strided_views_are_copied_when_the_job_runs(tmp_path):
    strip = np.arange(3 * 32 * 200, dtype=np.uint8).reshape(3, 32, 200)
    writer = TileWriter(TileProfile(32, 32, 3, "uint8", None, None, (None,) * 3), from_origin(0, 0, 1, 1))
    job = writer.prepare(tmp_path / "t.tif", strip[:, :, 64:96], 0, 64)
    job()
    with rasterio.open(tmp_path / "t.tif") as src:
        np.testing.assert_array_equal(src.read(), strip[:, :, 64:96])
        assert src.transform.c == 64


def test_a_tile_of_the_wrong_shape_is_refused(tmp_path):
    writer = TileWriter(TileProfile(32, 32, 1, "uint8", None, None, (None,)), from_origin(0, 0, 1, 1))
    with pytest.raises(ValueError, match="does not fit"):
        writer.write(tmp_path / "t.tif", np.zeros((1, 32, 31), np.uint8), 0, 0)


def test_background_writes_raise_the_first_failure(tmp_path):
    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), BackgroundWrites(workers=2, max_pending=2) as writes:
        writes.submit(lambda: (tmp_path / "a").write_text("a"))
        writes.submit(fail)
    assert (tmp_path / "a").read_text() == "a"
