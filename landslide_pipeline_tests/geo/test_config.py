from pathlib import Path

import pytest

from landslide_pipeline.datasets.adapter import available_adapters
from landslide_pipeline.geo.config import load_survey_config
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.survey import find_survey_files

REPO = Path(__file__).resolve().parents[2]


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "survey.toml").write_text(text)
    return folder


def test_without_a_config_file_the_folder_convention_applies(small_survey):
    config = load_survey_config(small_survey)
    assert (config.kind, config.source, config.config_file) == ("scene", small_survey.resolve(), None)
    files = find_survey_files(small_survey)
    assert files.images == (small_survey.resolve() / "image.tif",)
    assert files.dem.name == "dem.tif" and files.labels.name == "landslides.gpkg"
    assert files.labels_format == "gpkg"


def test_a_config_renames_files_and_points_at_data_elsewhere(small_survey, tmp_path):
    (small_survey / "image.tif").rename(small_survey / "ortho.tif")
    (small_survey / "landslides.gpkg").rename(small_survey / "mapped.gpkg")
    survey = write_config(tmp_path / "raw" / "elsewhere", """
kind = "scene"
site = "pit-north"
date = 2025-06-01
role = "test"
source = "../tiny"
image = "ortho.tif"
dem = "dem.tif"
nodata = 0
bands = [1, 3]
terrain_bands = ["relief", "slope"]
relief_radius_m = 2.5
[labels]
path = "mapped.gpkg"
""")
    config = load_survey_config(survey)
    assert config.source == small_survey.resolve()
    assert (config.site, config.nodata, config.bands, config.relief_radius_m) == ("pit-north", 0.0, (1, 3), 2.5)
    assert (config.date, config.role) == ("2025-06-01", "test")
    assert config.terrain_bands == ("elevation", "slope", "relief")
    files = find_survey_files(survey)
    assert files.image.name == "ortho.tif" and files.labels.name == "mapped.gpkg"
    assert config.config_file in files.all_files()


@pytest.mark.parametrize("text, problem", [
    ('kind = "mosaic"', "kind must be one of"),
    ("tile_size = 256", "unknown key"),
    ('bands = ["red"]', "bands must list int"),
    ("bands = [0, 1]", "1-based"),
    ('terrain_bands = ["aspect"]', "unknown terrain band"),
    ('kind = "tiles"', "needs an adapter"),
    ('source = "no/such/folder"', "does not exist"),
    ("[labels]\nformat = 'gpkg'", "needs a path"),
    ("kind = [", "invalid TOML"),
    ('role = "holdout"', "role must be one of"),
    ('date = "June 2025"', "ISO date"),
])
def test_config_mistakes_name_the_file_and_the_key(tmp_path, text, problem):
    survey = write_config(tmp_path / "s", text)
    with pytest.raises(SurveyInputError, match=problem) as error:
        load_survey_config(survey)
    assert error.value.path == survey / "survey.toml"


def test_a_tiles_survey_resolves_a_shipped_adapter_by_name(tmp_path):
    data = tmp_path / "dataset"
    data.mkdir()
    survey = write_config(tmp_path / "raw" / "l4s", f'kind = "tiles"\nsource = "{data}"\nadapter = "l4s_rgb"\n')
    files = find_survey_files(survey)
    assert files.kind == "tiles" and files.adapter.mask.encoding == "0/255"
    survey = write_config(tmp_path / "raw" / "bad", f'kind = "tiles"\nsource = "{data}"\nadapter = "l4s"\n')
    with pytest.raises(SurveyInputError, match="unknown adapter 'l4s'"):
        find_survey_files(survey)


def test_one_adapter_ships_per_shared_data_set():
    assert available_adapters() == ["coseismic_labelme", "coseismic_scene", "l4s_h5_samples", "l4s_rgb",
                                    "luding_s2", "tianshui_geoeye"]


def test_shipped_survey_examples_parse(tmp_path):
    for example in sorted((REPO / "configs" / "surveys").glob("*.toml")):
        text = example.read_text()
        source = tmp_path / example.stem
        source.mkdir()
        text = "\n".join(f'source = "{source}"' if line.startswith("source") else line for line in text.splitlines())
        config = load_survey_config(write_config(tmp_path / "raw" / example.stem, text))
        assert config.kind in ("scene", "tiles")
