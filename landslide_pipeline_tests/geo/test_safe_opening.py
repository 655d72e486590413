"""Hostile or huge user rasters: VRT XML in a .tif, remote paths, overviews pointed elsewhere, huge sparse scenes."""

import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import from_origin

from landslide_pipeline.geo import tiling
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.geo.rasters import GDAL_SAFETY_OPTIONS, band_descriptions, open_raster
from landslide_pipeline.geo.scene import MAX_SCENE_PIXELS, SceneFiles, SceneReader
from landslide_pipeline.geo.tiling import estimate_tile_bytes, tile_scene
from landslide_pipeline_tests.conftest import ORIGIN, UTM, write_raster


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local TCP port that accepts connections, to tell whether GDAL tried to reach it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    yield server
    server.close()


def connected(server: socket.socket) -> bool:
    try:
        client, _ = server.accept()
    except TimeoutError:
        return False
    client.close()
    return True


def secret(folder: Path) -> Path:
    """A raster outside the survey, filled with 99."""
    return write_raster(folder / "secret.tif", np.full((1, 64, 64), 99, np.uint8))


def vrt_xml(size: int, sources: list[str]) -> str:
    xml = "".join(f'<SimpleSource><SourceFilename relativeToVRT="0">{s}</SourceFilename><SourceBand>1</SourceBand>'
                  "</SimpleSource>" for s in sources)
    return f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><VRTRasterBand dataType="Byte" band="1">{xml}' \
           "</VRTRasterBand></VRTDataset>"


def test_a_tif_holding_vrt_xml_is_refused_without_any_network_access(tmp_path, listener):
    port = listener.getsockname()[1]
    hostile = tmp_path / "image.tif"
    hostile.write_text('<?xml version="1.0"?>\n' + vrt_xml(64, [str(secret(tmp_path)),
                                                                 f"/vsicurl/http://127.0.0.1:{port}/x.tif",
                                                                 "/vsicurl/http://127.0.0.1:9/x.tif"]))
    with pytest.raises(SurveyInputError, match=r"image.tif: cannot read raster: not a GeoTIFF, PNG or JPEG file "
                                               r"\(found VRT XML\); user rasters are opened with the GTiff, PNG "
                                               "and JPEG drivers only") as error:
        with open_raster(hostile):
            pass
    assert error.value.path == hostile
    with pytest.raises(SurveyInputError, match="found VRT XML"), SceneReader(SceneFiles((hostile,))):
        pass
    assert not connected(listener)


@pytest.mark.parametrize("path", ["/vsicurl/http://127.0.0.1:9/x.tif", "http://127.0.0.1:9/x.tif",
                                  Path("/vsicurl/http://127.0.0.1:9/x.tif"), "/vsimem/x.tif", "/vsizip/a.zip/x.tif",
                                  "vrt:///tmp/x.tif?bands=1"])
def test_remote_and_virtual_paths_are_refused(path):
    with pytest.raises(SurveyInputError, match="only local files are read, not URLs or GDAL /vsi paths"):
        with open_raster(path):
            pass


@pytest.mark.parametrize(("content", "found"), [(b"not a tiff, just text", "text"), (b"", "an empty file"),
                                                (b"\x89HDF\r\n\x1a\n\0\0", "HDF5"), (b"\0\1\2\3", "an unknown format")])
def test_other_files_say_what_they_hold(tmp_path, content, found):
    (tmp_path / "tile.png").write_bytes(content)
    with pytest.raises(SurveyInputError, match=rf"tile.png: cannot read raster: .*\(found {found}\)"):
        with open_raster(tmp_path / "tile.png"):
            pass


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_gdal_network_access_is_off_for_the_whole_process(tmp_path, listener):
    port = listener.getsockname()[1]
    assert all(os.environ[key] == value for key, value in GDAL_SAFETY_OPTIONS.items())
    vrt = tmp_path / "remote.vrt"
    vrt.write_text(vrt_xml(64, [f"/vsicurl/http://127.0.0.1:{port}/x.tif"]))
    # Short timeouts only bound the test should GDAL connect after all.
    with rasterio.Env(GDAL_HTTP_TIMEOUT=2, GDAL_HTTP_CONNECTTIMEOUT=2):
        # Straight through rasterio, past open_raster's checks: GDAL itself refuses.
        with pytest.raises(RasterioIOError):
            rasterio.open(f"/vsicurl/http://127.0.0.1:{port}/x.tif")
        with rasterio.open(vrt) as src, pytest.raises(RasterioIOError):
            src.read()
    assert not connected(listener)


@pytest.mark.parametrize("route", ["metadata", "sidecar"])
def test_overviews_pointed_at_other_files_are_never_read(tmp_path, route):
    image = write_raster(tmp_path / "image.tif", np.full((1, 64, 64), 3, np.uint8))
    overviews = vrt_xml(32, [str(secret(tmp_path))])
    if route == "metadata":  # a GeoTIFF's own metadata can name its overview file
        (tmp_path / "overviews.xml").write_text(overviews)
        with rasterio.open(image, "r+") as dst:
            dst.update_tags(ns="OVERVIEWS", OVERVIEW_FILE=str(tmp_path / "overviews.xml"))
    else:
        (tmp_path / "image.tif.ovr").write_text(overviews)
    with open_raster(image) as src:
        assert src.overviews(1) == []
        assert np.unique(src.read(out_shape=(1, 16, 16))).tolist() == [3]


def test_band_descriptions_survive_opening_without_overviews(tmp_path):
    image = write_raster(tmp_path / "image.tif", np.zeros((3, 64, 64), np.uint8))
    with rasterio.open(image, "r+") as dst:
        dst.descriptions = ("nir", "red", "green")
    assert band_descriptions(image) == ("nir", "red", "green")
    with SceneReader(SceneFiles((image,))) as reader:
        assert reader.band_names == ("nir", "red", "green")


@pytest.mark.parametrize("driver", ["GTiff", "PNG", "JPEG"])
def test_geotiff_png_and_jpeg_still_open(tmp_path, driver):
    pixels = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    path = tmp_path / f"tile.{driver.lower()}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver=driver, width=64, height=64, count=3, dtype="uint8") as dst:
            dst.write(pixels)
    with open_raster(path) as src:
        assert (src.driver, src.count, src.shape) == (driver, 3, (64, 64))
        if driver != "JPEG":
            np.testing.assert_array_equal(src.read(), pixels)


def test_a_bigtiff_still_opens(tmp_path):
    path = tmp_path / "big.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs=UTM,
                       transform=from_origin(*ORIGIN, 0.5, 0.5), BIGTIFF="YES") as dst:
        dst.write(np.full((1, 64, 64), 5, np.uint8))
    assert path.read_bytes()[:4] == b"II+\x00"
    with open_raster(path) as src:
        assert src.read().max() == 5


def sparse_scene(path: Path, size: int) -> Path:
    """A tiled GeoTIFF of size x size px whose blocks are never written: it stays small on disk."""
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=UTM,
                       transform=from_origin(*ORIGIN, 0.5, 0.5), tiled=True, blockxsize=512, blockysize=512,
                       sparse_ok=True):
        pass
    return path


def test_a_huge_sparse_scene_is_refused_before_any_tile_is_written(tmp_path, monkeypatch):
    scene = sparse_scene(tmp_path / "image.tif", 100_000)
    assert scene.stat().st_size < 5 * 2**20
    # Should the cap fail, the disk check still stops the 30 GB of tiles (with another message).
    monkeypatch.setattr(tiling.shutil, "disk_usage", lambda _: SimpleNamespace(free=0))
    out = tmp_path / "tiles"
    with pytest.raises(SurveyInputError, match=r"image.tif: scene of 100,000 x 100,000 px \(10,000,000,000 pixels\) "
                                               r"is above the cap of 2,000,000,000 pixels; .*raise the cap "
                                               r"\(SceneFiles.max_pixels, or tile_scene's max_scene_pixels\)"):
        tile_scene("huge", SceneFiles((scene,)), out, TilingSpec(128))
    assert not out.exists()
    assert MAX_SCENE_PIXELS == 2_000_000_000


def test_the_scene_cap_can_be_raised_or_lowered(tmp_path):
    scene = write_raster(tmp_path / "image.tif", np.zeros((3, 128, 256), np.uint8))
    with pytest.raises(SurveyInputError, match=r"256 x 128 px \(32,768 pixels\) is above the cap of 32,767 pixels"):
        tile_scene("small", SceneFiles((scene,)), tmp_path / "tiles", TilingSpec(128), max_scene_pixels=128 * 256 - 1)
    with pytest.raises(SurveyInputError, match="above the cap of 100 pixels"), SceneReader(SceneFiles((scene,),
                                                                                                   max_pixels=100)):
        pass
    index = tile_scene("small", SceneFiles((scene,), max_pixels=100), tmp_path / "tiles", TilingSpec(128),
                       max_scene_pixels=128 * 256)
    assert len(index) == 2


def test_tiling_refuses_tiles_that_would_not_fit_on_the_disk(tmp_path, monkeypatch):
    scene = write_raster(tmp_path / "image.tif", np.zeros((3, 256, 256), np.uint8))
    free = 2**20  # less than the 256 MiB reserve alone
    monkeypatch.setattr(tiling.shutil, "disk_usage", lambda _: SimpleNamespace(free=free))
    out = tmp_path / "tiles"
    with pytest.raises(SurveyInputError, match=r"tiles: the tiles of .*image.tif need up to 0.2 MiB \(\+ 10% and "
                                               r"256.0 MiB to spare\) but its disk has 1.0 MiB free") as error:
        tile_scene("small", SceneFiles((scene,)), out, TilingSpec(128))
    assert error.value.path == out
    assert not out.exists()


def test_the_tile_bytes_estimate():
    # 256 px with 128 px tiles: 2 x 2 tiles of 128 * 128 px * 3 bytes, and one header each.
    assert estimate_tile_bytes(256, 256, 3, 1, TilingSpec(128)) == 4 * (128 * 128 * 3 + 4096)
    # Stride 64: 3 x 3 tiles; the snapped last tile of a 300 px side adds a row.
    assert estimate_tile_bytes(256, 300, 3, 1, TilingSpec(128, stride=64)) == 3 * 4 * (128 * 128 * 3 + 4096)
    # A DEM adds float32 terrain bands in a second file per tile.
    assert estimate_tile_bytes(256, 256, 4, 2, TilingSpec(128), terrain_bands=2) == 4 * (128 * 128 * 16 + 2 * 4096)
    # About pixels x bytes per pixel x (tile_size / stride)^2, a header's share of a pixel included.
    big = estimate_tile_bytes(20_000, 20_000, 3, 1, TilingSpec(128, stride=64))
    assert big == pytest.approx(20_000**2 * (3 + 4096 / 128**2) * (128 / 64) ** 2, rel=0.02)
    with pytest.raises(ValueError, match="smaller than the tile size"):
        estimate_tile_bytes(100, 300, 3, 1, TilingSpec(128))


def test_a_mosaic_of_real_crops_still_reads_through_its_vrt(tmp_path):
    crops = []
    for i in range(2):
        path = tmp_path / f"c{i}.tif"
        transform = from_origin(ORIGIN[0] + 32 * i, ORIGIN[1], 0.5, 0.5)
        crops.append(write_raster(path, np.full((3, 64, 64), 10 + i, np.uint8), transform=transform))
    with SceneReader(SceneFiles(tuple(crops))) as reader:
        pixels, _ = reader.read(rasterio.windows.Window(0, 0, 128, 64))
    assert pixels[:, :, 0].max() == 10 and pixels[:, :, 127].max() == 11
