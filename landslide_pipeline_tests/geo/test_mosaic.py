from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.mosaic import open_scene
from landslide_pipeline.geo.tiling import TilingSpec
from landslide_pipeline.surveys import open_survey
from landslide_pipeline_tests.conftest import ORIGIN, UTM, shared_data, write_raster

RES = 0.5


def crop(folder: Path, name: str, row: int, col: int, shape=(64, 96), crs=UTM, offset_px=0.0, dtype="uint8") -> Path:
    """A crop of a 0.5 m scene whose upper-left pixel is scene pixel (row, col), filled with its scene
    coordinates so that any pixel tells where it came from."""
    rows, cols = np.mgrid[row:row + shape[0], col:col + shape[1]]
    pixels = np.stack([rows % 251, cols % 251, np.full_like(rows, 7)]).astype(dtype)
    transform = from_origin(ORIGIN[0] + (col + offset_px) * RES, ORIGIN[1] - row * RES, RES, RES)
    return write_raster(folder / name, pixels, crs=crs, transform=transform)


def mosaic_survey(tmp_path: Path, crops: list[tuple[int, int]]) -> Path:
    folder = tmp_path / "raw" / "mosaic"
    (folder / "crops").mkdir(parents=True)
    for i, (row, col) in enumerate(crops):
        crop(folder / "crops", f"c{i}.tif", row, col)
    (folder / "survey.toml").write_text('image = "crops/*.tif"\n')
    return folder


def test_crops_join_into_one_scene_on_their_grid(tmp_path):
    survey = mosaic_survey(tmp_path, [(0, 0), (0, 96), (64, 0), (64, 96)])
    mosaic = open_survey(survey)
    assert len(mosaic.scene.images) == 4
    with open_scene(mosaic.scene.images) as scene:
        assert (scene.height, scene.width, scene.count) == (128, 192, 3)
        assert scene.transform == from_origin(*ORIGIN, RES, RES)
        pixels = scene.read()
    rows, cols = np.mgrid[0:128, 0:192]
    np.testing.assert_array_equal(pixels[0], rows % 251)
    np.testing.assert_array_equal(pixels[1], cols % 251)
    meta = mosaic.inspect()
    assert (meta.width, meta.height, meta.n_images) == (192, 128, 4)


def test_gaps_between_crops_are_nodata_not_black(tmp_path):
    survey = mosaic_survey(tmp_path, [(0, 0), (64, 96)])  # two crops on a diagonal: half the box is empty
    spec = TilingSpec(32, max_nodata_fraction=0.0)
    index = open_survey(survey, "mosaic").tile(tmp_path / "tiles", spec)
    assert len(index) == 2 * 3 * 2  # the 2x3 tiles of each crop; the empty quarters are skipped
    assert (index.nodata_fraction == 0).all()
    with rasterio.open(tmp_path / "tiles" / "image" / "r000064_c000096.tif") as src:
        assert src.count == 3  # the mosaic's coverage alpha band marks gaps; it is not an image band
        np.testing.assert_array_equal(src.read(1), np.mgrid[64:96, 96:128][0] % 251)


def test_a_crop_off_the_pixel_grid_or_in_another_crs_is_refused(tmp_path):
    folder = tmp_path / "crops"
    folder.mkdir()
    first = crop(folder, "a.tif", 0, 0)
    shifted = crop(folder, "b.tif", 0, 96, offset_px=0.4)
    with pytest.raises(SurveyInputError, match=r"b.tif: lies 0.400, 0.000 px off the mosaic's pixel grid"), \
            open_scene((first, shifted)):
        pass
    other = crop(folder, "c.tif", 0, 96, crs="EPSG:32651")
    with pytest.raises(SurveyInputError, match="c.tif: cannot join the mosaic: CRS EPSG:32651 differs"), \
            open_scene((first, other)):
        pass
    uint16 = crop(folder, "d.tif", 0, 96, dtype="uint16")
    with pytest.raises(SurveyInputError, match="dtype uint16, not uint8"), open_scene((first, uint16)):
        pass


def test_the_shared_coseismic_crops_mosaic_into_their_scene(tmp_path):
    source = shared_data("coseismic_scene")
    survey = tmp_path / "raw" / "coseismic"
    survey.mkdir(parents=True)
    (survey / "survey.toml").write_text(f'source = "{source}"\nimage = "*.tif"\nsite = "coseismic"\n')
    mosaic = open_survey(survey)
    meta = mosaic.inspect()
    assert (meta.width, meta.height, meta.n_images, meta.crs, meta.site) == (2048, 1280, 40, "EPSG:32654", "coseismic")
    index = mosaic.tile(tmp_path / "tiles", TilingSpec(256))
    assert len(index) == 8 * 5
    # A tile of the mosaic equals the crop it coincides with, pixel for pixel and in place.
    for tile in index.sample(3, random_state=1).itertuples():
        with rasterio.open(tmp_path / "tiles" / "image" / f"{tile.tile_id}.tif") as src:
            x, y = src.xy(0, 0)
            pixels = src.read()
        matches = []
        for path in mosaic.scene.images:
            with rasterio.open(path) as crop_src:
                if crop_src.xy(0, 0) == (x, y):
                    matches.append(crop_src.read())
        assert len(matches) == 1
        np.testing.assert_array_equal(pixels, matches[0])
