"""``landslide predict``, ``info`` and ``survey add|list``: what a user with an image and a model runs."""

import json
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import torch

from landslide_pipeline.cli import main
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.nn.segmenter import Segmenter
from landslide_pipeline.surveys.arrivals import find_arrivals
from landslide_pipeline.surveys.registry import open_survey
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey
from landslide_pipeline.training.checkpoint import MemberSpec, ModelSpec, save_model

THRESHOLD = 0.3


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A generated pit (image, DEM, polygons) in a folder of its own, outside any data folder."""
    return generate_survey(tmp_path_factory.mktemp("drone") / "flight_7", SyntheticSurveySpec(size_px=256, seed=3))


def saved_model(folder: Path, bands: list[str]) -> Path:
    """A narrow U-Net with fixed random weights, saved as the pipeline saves models."""
    torch.manual_seed(0)
    member = MemberSpec("unet", 0.125, 0, (0.5,) * len(bands), (0.25,) * len(bands), parameters=1234)
    spec = ModelSpec(bands, "uint8", [member], threshold=THRESHOLD, mlflow_run_id="")
    save_model(folder, Segmenter([member.build(len(bands), 2)]), spec)
    return folder


def test_predict_writes_the_map_of_the_landslide_map_asset_in_the_images_grid(tmp_path, survey, capsys):
    model = saved_model(tmp_path / "model", ["red", "green", "blue", "slope"])
    out = tmp_path / "map"
    assert main(["predict", str(survey.image), "--dem", str(survey.dem), "--model", str(model), "--out", str(out),
                 "--window", "128", "--overlap", "32", "--min-area-m2", "0"]) == 0
    assert "landslides" in capsys.readouterr().out
    with rasterio.open(survey.image) as image, rasterio.open(out / "probability.tif") as probability, \
            rasterio.open(out / "mask.tif") as mask:
        assert (probability.crs, probability.transform, probability.shape) == (image.crs, image.transform, image.shape)
        p, m = probability.read(1), mask.read(1)
    facts = json.loads((out / "map.json").read_text())
    assert facts["model"] == str(model) and facts["dem"] == str(survey.dem.resolve())
    # The mask is the probability above the model's calibrated threshold (the probability raster holds
    # round(p x 254): a pixel within one step of the threshold may fall either way).
    level = THRESHOLD * 254
    assert (m[p > level + 1] == 1).all() and (m[p < level - 1] == 0).all()
    assert 0 < (m == 1).mean() < 1  # the random model marks some pixels, not all
    polygons = gpd.read_file(out / "landslides.gpkg", layer="landslides")
    assert len(polygons) == facts["n_landslides"] and polygons.crs == image.crs
    assert facts["threshold"] == THRESHOLD  # the model's calibrated threshold, recorded
    # What a user opens: styles beside the rasters, a colour table, the quicklook and the report.
    assert {"probability.qml", "mask.qml", "quicklook.png", "report.md"} <= {p.name for p in out.iterdir()}
    with rasterio.open(out / "mask.tif") as styled:
        assert styled.colormap(1)[1] == (227, 26, 28, 255) and styled.colormap(1)[0][:3] == (0, 0, 0)
    assert (out / "quicklook.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert f"**{len(polygons)} landslides**" in report and "](quicklook.png)" in report


def test_predict_refuses_a_terrain_model_without_a_dem_and_leaves_the_old_map(tmp_path, survey, capsys):
    model = saved_model(tmp_path / "model", ["red", "green", "blue", "slope"])
    out = tmp_path / "map"
    out.mkdir()
    (out / "old.txt").write_text("the previous map")
    assert main(["predict", str(survey.image), "--model", str(model), "--out", str(out), "--quiet"]) == 2
    assert "slope" in capsys.readouterr().err
    assert (out / "old.txt").read_text() == "the previous map" and len(list(out.iterdir())) == 1


def test_predict_names_a_missing_image(tmp_path, capsys):
    model = saved_model(tmp_path / "model", ["red", "green", "blue"])
    assert main(["predict", str(tmp_path / "nope.tif"), "--model", str(model), "--out", str(tmp_path / "m")]) == 2
    assert "nope.tif" in capsys.readouterr().err


def test_info_prints_the_models_contract(tmp_path, capsys):
    model = saved_model(tmp_path / "model", ["red", "green", "blue", "slope"])
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "bands          red, green, blue, slope" in out
    assert "multiples of 32" in out and f"p > {THRESHOLD:g}" in out
    assert "slope 0.5±0.25" in out and "1,234 parameters" in out


def test_survey_add_points_at_the_files_in_place_and_marks_the_survey_ready(tmp_path, survey, capsys):
    data = tmp_path / "data"
    assert main(["survey", "add", str(survey.image), "--id", "pit_2026_05", "--dem", str(survey.dem),
                 "--labels", str(survey.landslides), "--site", "north-pit", "--date", "2026-05-14",
                 "--data", str(data)]) == 0
    layout = DataLayout(data)
    folder = layout.raw_survey("pit_2026_05")
    assert sorted(p.name for p in folder.iterdir()) == ["READY", "survey.toml"]  # nothing copied
    opened = open_survey(folder)
    assert opened.scene.images == (survey.image.resolve(),) and opened.scene.dem == survey.dem.resolve()
    assert opened.has_labels and opened.config.site == "north-pit" and opened.config.date == "2026-05-14"
    assert list(find_arrivals(layout.raw).ready) == ["pit_2026_05"]
    capsys.readouterr()
    assert main(["survey", "list", "--data", str(data)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("pit_2026_05"))
    assert "ready" in line and "False" in line  # not tiled yet


@pytest.mark.parametrize(("argv", "message"), [
    (["--id", "../escape"], "survey id"),
    (["--id", "ok", "--dem", "/no/such/dem.tif"], "no such file"),
    (["--id", "ok", "--date", "14/05/2026"], "date"),
])
def test_survey_add_refuses_bad_input_and_writes_nothing(tmp_path, survey, capsys, argv, message):
    data = tmp_path / "data"
    assert main(["survey", "add", str(survey.image), *argv, "--data", str(data)]) == 2
    assert message in capsys.readouterr().err.lower()
    raw = DataLayout(data).raw
    assert not raw.exists() or not [p for p in raw.iterdir() if not p.name.startswith(".")]


def test_survey_add_refuses_an_existing_id(tmp_path, survey, capsys):
    data = tmp_path / "data"
    assert main(["survey", "add", str(survey.image), "--id", "twice", "--data", str(data)]) == 0
    assert main(["survey", "add", str(survey.image), "--id", "twice", "--data", str(data)]) == 2
    assert "already exists" in capsys.readouterr().err
