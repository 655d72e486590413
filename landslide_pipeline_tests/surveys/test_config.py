from pathlib import Path

import pytest

from landslide_pipeline.datasets.adapter import available_adapters
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.surveys import open_survey
from landslide_pipeline.surveys.config import load_survey_config

REPO = Path(__file__).resolve().parents[2]


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "survey.toml").write_text(text)
    return folder


def test_without_a_config_file_the_folder_convention_applies(small_survey):
    config = load_survey_config(small_survey)
    assert (config.kind, config.source, config.config_file) == ("scene", small_survey.resolve(), None)
    survey = open_survey(small_survey)
    assert survey.scene.images == (small_survey.resolve() / "image.tif",)
    assert survey.scene.dem.name == "dem.tif" and survey.labels.path.name == "landslides.gpkg"
    assert survey.labels.format == "gpkg"


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
    opened = open_survey(survey)
    assert opened.scene.images[0].name == "ortho.tif" and opened.labels.path.name == "mapped.gpkg"
    assert config.config_file in opened.files()


@pytest.mark.parametrize("text, problem", [
    ('kind = "mosaic"', "kind: must be 'scene' or 'tiles', got 'mosaic'"),
    ("tile_size = 256", "tile_size: unknown key"),
    ('bands = ["red"]', r"bands\[0\]: Input should be a valid integer, got 'red'"),
    ('bands = "x"', r"bands\[0\]: Input should be a valid integer, got 'x'"),
    ("bands = [0, 1]", r"bands: must be 1-based band numbers, got \[0, 1\]"),
    ("nodata = true", "nodata: Input should be a valid number, got True"),
    ("relief_radius_m = 0", "relief_radius_m: Input should be greater than 0"),
    ('terrain_bands = ["aspect"]', r"terrain_bands: unknown terrain band\(s\) \['aspect'\]"),
    ('kind = "tiles"', "needs an adapter"),
    ('kind = "tiles"\nadapter = "l4s_rgb"\n[labels]\npath = "a.gpkg"', "takes its masks from the adapter"),
    ("adapter = 3", "adapter: must be an adapter name, a path to one or a table, got 3"),
    ('source = "no/such/folder"', "source: folder .* does not exist"),
    ("[labels]\nformat = 'gpkg'", r"\[labels\]\.path: missing \(required\)"),
    ("[labels]\npath = 'a.gpkg'\nformat = 'kml'", r"\[labels\]\.format: must be 'auto', 'gpkg', .* got 'kml'"),
    ("[labels]\npath = 'a.gpkg'\nnmaes = ['slide']", r"\[labels\]\.nmaes: unknown key"),
    ("[labels]\npath = 'a.json'\nnames = [1]", r"\[labels\]\.names\[0\]: Input should be a valid string, got 1"),
    ("labels = 'a.gpkg'", "labels: must be a table, got 'a.gpkg'"),
    ("kind = [", "invalid TOML"),
    ('role = "holdout"', "role: must be 'train', 'test' or 'map', got 'holdout'"),
    ('date = "June 2025"', "date: must be an ISO date like 2025-06-01, got 'June 2025'"),
])
def test_config_mistakes_name_the_file_and_the_key(tmp_path, text, problem):
    survey = write_config(tmp_path / "s", text)
    with pytest.raises(SurveyInputError, match=problem) as error:
        load_survey_config(survey)
    assert error.value.path == survey / "survey.toml"
    assert str(error.value).startswith(f"{survey / 'survey.toml'}: ")


def test_every_mistake_of_a_config_is_reported_at_once(tmp_path):
    survey = write_config(tmp_path / "s", 'site = 3\nimage = ["a.tif", 4]\n[labels]\npath = "a.gpkg"\nlayr = "x"\n')
    with pytest.raises(SurveyInputError) as error:
        load_survey_config(survey)
    assert error.value.problem == ("site: Input should be a valid string, got 3; "
                                   "image[1]: Input should be a valid string, got 4; [labels].layr: unknown key")


def test_single_values_count_as_lists_and_dates_may_be_strings(tmp_path):
    survey = write_config(tmp_path / "s", 'image = "a.tif"\nbands = 2\ndate = "2025-06-01"\nterrain_bands = "hillshade"\n'
                                          '[labels]\npath = "a.json"\nnames = "slide"\n')
    config = load_survey_config(survey)
    assert (config.image, config.bands, config.date) == (("a.tif",), (2,), "2025-06-01")
    assert config.terrain_bands == ("elevation", "slope", "hillshade")
    assert (config.labels.path, config.labels.format, config.labels.names) == ("a.json", "auto", ("slide",))


def test_a_tiles_survey_resolves_a_shipped_adapter_by_name(tmp_path):
    data = tmp_path / "dataset"
    data.mkdir()
    survey = write_config(tmp_path / "raw" / "l4s", f'kind = "tiles"\nsource = "{data}"\nadapter = "l4s_rgb"\n')
    opened = open_survey(survey)
    assert opened.kind == "tiles" and opened.adapter.mask.encoding == "0/255"
    survey = write_config(tmp_path / "raw" / "bad", f'kind = "tiles"\nsource = "{data}"\nadapter = "l4s"\n')
    with pytest.raises(SurveyInputError, match="unknown adapter 'l4s'"):
        open_survey(survey)


def test_an_inline_adapter_table_names_the_dotted_key(tmp_path):
    data = tmp_path / "dataset"
    data.mkdir()
    survey = write_config(tmp_path / "raw" / "inline", f'kind = "tiles"\nsource = "{data}"\n'
                                                       '[adapter.image]\npattern = "img/*.tif"\nbands = [0]\n'
                                                       '[adapter.mask]\npattern = "msk/*.tif"\nencodng = "0/1"\n')
    with pytest.raises(SurveyInputError) as error:
        open_survey(survey)
    assert error.value.path == survey / "survey.toml"
    assert error.value.problem == ("[adapter.image].bands: must be 1-based band numbers, got [0]; "
                                   "[adapter.mask].encodng: unknown key")


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


def test_data_roots_confine_the_source_folder_when_set(small_survey, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (small_survey / "survey.toml").write_text(f'source = "{elsewhere}"\n')
    monkeypatch.setenv("LANDSLIDE_DATA_ROOTS", str(small_survey.parent))
    with pytest.raises(SurveyInputError, match=r"survey.toml: source: folder .*elsewhere lies outside the allowed "
                                                r"data roots .*LANDSLIDE_DATA_ROOTS"):
        load_survey_config(small_survey)
    monkeypatch.setenv("LANDSLIDE_DATA_ROOTS", f"{small_survey.parent}:{tmp_path}")
    assert load_survey_config(small_survey).source == elsewhere.resolve()


def test_data_roots_confine_the_files_a_survey_toml_names(small_survey, tmp_path, monkeypatch):
    outside = tmp_path / "outside.tif"
    outside.write_bytes((small_survey / "dem.tif").read_bytes())
    (small_survey / "survey.toml").write_text('dem = "../../outside.tif"\n')
    monkeypatch.setenv("LANDSLIDE_DATA_ROOTS", str(small_survey.parent))
    with pytest.raises(SurveyInputError, match=r"survey.toml: .*outside.tif lies outside the allowed data roots"):
        open_survey(small_survey)
    monkeypatch.delenv("LANDSLIDE_DATA_ROOTS")
    assert open_survey(small_survey).scene.dem.resolve() == outside.resolve()  # unset: anywhere
