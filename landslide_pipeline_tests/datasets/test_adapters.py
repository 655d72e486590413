"""Every data set of ../shared/data loads through its shipped adapter (skipped where it is absent),
and adapter files are checked key by key."""

import numpy as np
import pytest

from landslide_pipeline.datasets.adapter import ADAPTERS_DIR, available_adapters, load_adapter
from landslide_pipeline.datasets.precut import find_pairs, label_dataset, tile_dataset
from landslide_pipeline.datasets.readers import read_image, read_mask
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.schemas import TileIndex
from landslide_pipeline.surveys import open_survey
from landslide_pipeline_tests.conftest import shared_data

# data set folder, adapter, tiles, (bands, height, width, dtype)
DATA_SETS = [
    ("l4s_rgb/validation", "l4s_rgb", 396, (3, 128, 128, "uint8")),
    ("l4s_h5_samples", "l4s_h5_samples", 6, (14, 128, 128, "float64")),
    ("coseismic_labelme", "coseismic_labelme", 20, (3, 256, 256, "uint8")),
    ("coseismic_scene", "coseismic_scene", 40, (3, 256, 256, "uint8")),
    ("tianshui_geoeye", "tianshui_geoeye", 9, (3, 600, 600, "uint8")),
    ("luding_s2", "luding_s2", 1, (23, 128, 128, "float32")),
]


@pytest.mark.parametrize("folder, adapter_name, n_tiles, shape", DATA_SETS, ids=[d[1] for d in DATA_SETS])
def test_a_few_tiles_load_through_the_adapter(folder, adapter_name, n_tiles, shape):
    root = shared_data(folder)
    adapter = load_adapter(ADAPTERS_DIR / f"{adapter_name}.toml")
    pairs = find_pairs(root, adapter)
    assert len(pairs) == n_tiles
    for pair in pairs[:3]:
        image, transparent = read_image(pair.image, adapter.image)
        assert (*image.shape, str(image.dtype)) == shape
        assert transparent is None or not transparent.any()
        if adapter.mask is not None:
            mask = read_mask(pair.mask, adapter.mask, image.shape[1:])
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}


@pytest.mark.parametrize("folder, adapter_name, fraction", [
    ("tianshui_geoeye", "tianshui_geoeye", 0.048), ("coseismic_labelme", "coseismic_labelme", 0.309),
    ("luding_s2", "luding_s2", 0.245), ("l4s_h5_samples", "l4s_h5_samples", 0.02),
])
def test_small_data_sets_become_pipeline_tiles_and_masks(tmp_path, folder, adapter_name, fraction):
    root = shared_data(folder)
    adapter = load_adapter(ADAPTERS_DIR / f"{adapter_name}.toml")
    index = tile_dataset(adapter_name, root, adapter, tmp_path, TilingSpec(128))
    TileIndex.validate(index)
    assert (index.row_off == -1).all() and (index.col_off == -1).all()
    assert (index.height == 128).all() and index.tile_id.is_unique
    labelled = label_dataset(index, root, adapter, tmp_path)
    TileIndex.validate(labelled)
    # The data sets' published landslide shares (README); re-cut tiles overlap a little.
    assert labelled.landslide_fraction.mean() == pytest.approx(fraction, abs=0.01)
    assert len(list((tmp_path / "masks").glob("*.tif"))) == len(index)


def test_a_re_cut_tianshui_tile_is_the_window_of_its_jpeg(tmp_path):
    root = shared_data("tianshui_geoeye")
    adapter = load_adapter(ADAPTERS_DIR / "tianshui_geoeye.toml")
    index = tile_dataset("tianshui", root, adapter, tmp_path, TilingSpec(128))
    assert len(index) == 9 * 5 * 5  # 600 px -> offsets 0, 128, 256, 384, 472
    tile = index.set_index("tile_id").loc["276_r0472_c0256"]
    assert (tile.source, tile.source_row_off, tile.source_col_off) == ("276", 472, 256)
    image, _ = read_image(root / "images" / "train_276.jpg", adapter.image)
    from landslide_pipeline.geo.rasters import open_raster

    with open_raster(tmp_path / "image" / "276_r0472_c0256.tif") as src:
        np.testing.assert_array_equal(src.read(), image[:, 472:600, 256:384])


def test_a_survey_folder_points_at_a_shared_data_set(tmp_path):
    root = shared_data("l4s_rgb/validation")
    survey = tmp_path / "raw" / "l4s_validation"
    survey.mkdir(parents=True)
    (survey / "survey.toml").write_text(f'kind = "tiles"\nsource = "{root}"\nadapter = "l4s_rgb"\n')
    meta = open_survey(survey, "l4s_validation").inspect()
    assert (meta.kind, meta.n_images, meta.bands, meta.dtype, meta.labels_format) == ("tiles", 396, 3, "uint8", "mask")


@pytest.mark.parametrize("name", available_adapters())
def test_the_shipped_adapters_parse(name):
    adapter = load_adapter(ADAPTERS_DIR / f"{name}.toml")
    assert adapter.name == name and adapter.description


@pytest.mark.parametrize("text, problem", [
    ('[image]\npattern = "*.png"\nbands = [1]\nband = 2\n', r"\[image\]\.band: unknown key"),
    ('colour = 1\n[image]\npattern = "*.png"\n', "colour: unknown key"),
    ('[image]\npattern = "*.png"\nbands = "x"\n', r"\[image\]\.bands\[0\]: Input should be a valid integer, got 'x'"),
    ('[image]\npattern = "*.png"\naxes = "WHC"\n', r"\[image\]\.axes: must be 'HWC' or 'CHW', got 'WHC'"),
    ('[image]\npattern = "../*.png"\n', r"\[image\]\.pattern: '../\*.png' must be relative, inside the data set"),
    ('[image]\npattern = "a/*.png"\n[mask]\npattern = "b/*.png"\nencoding = "0/2"\n', r"\[mask\]\.encoding: must be '0/1'"),
    ('[image]\npattern = "a/*.png"\n[mask]\npattern = "b/*.png"\ncolor = [255, 0]\n', r"\[mask\]\.color\[2\]: missing"),
    ('[image]\npattern = "a/*.png"\n[mask]\npattern = "b/*.png"\nencoding = "threshold"\n',
     'mask: encoding = "threshold" needs a threshold'),
    ('[image]\npattern = "a/*.png"\n[mask]\npattern = "b.png"\n', "same number of '\\*'"),
    ('nodata = "0"\n', r"nodata: Input should be a valid number, got '0'; image: missing \(required\)"),
    ('[image\n', "invalid TOML"),
])
def test_adapter_mistakes_name_the_file_and_the_key(tmp_path, text, problem):
    path = tmp_path / "adapter.toml"
    path.write_text(text)
    with pytest.raises(SurveyInputError, match=problem) as error:
        load_adapter(path)
    assert error.value.path == path and str(error.value).startswith(f"{path}: ")
