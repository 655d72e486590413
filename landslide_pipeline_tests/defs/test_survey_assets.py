"""The three survey assets on a scene with a config file, on a pre-cut data set, and on bad input."""

import json
import warnings

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from dagster import DagsterInstance, materialize
from rasterio.errors import NotGeoreferencedWarning

from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.defs.survey_assets import manual_labels, raw_survey, survey_tiles
from landslide_pipeline.layout import LABEL_INDEX, TILE_INDEX, DataLayout
from landslide_pipeline.schemas import TileIndex
from landslide_pipeline.training.dataset import LabelledSurvey, load_tile

ASSETS = [raw_survey, survey_tiles, manual_labels]


def run(layout: DataLayout, survey_id: str, config: dict | None = None, raise_on_error: bool = True):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("survey", [survey_id])
    ops = {name: {"config": cfg} for name, cfg in (config or {}).items()}
    return materialize(ASSETS, partition_key=survey_id, instance=instance, run_config={"ops": ops},
                       resources={"data_store": DataStore(root=str(layout.root))}, raise_on_error=raise_on_error)


def contract_tile(layout: DataLayout, survey_id: str, use_terrain: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One labelled tile as the training code reads it, and the terrain bands it holds."""
    labels = gpd.read_parquet(layout.labels("manual", survey_id) / LABEL_INDEX)
    TileIndex.validate(labels)
    survey = LabelledSurvey(layout.tiles(survey_id), layout.labels("manual", survey_id) / "masks",
                            labels.drop(columns="geometry"))
    x, y, scaling, terrain = load_tile(survey, labels.tile_id.iloc[0], use_terrain)
    assert scaling == "uint8"
    return x, y, terrain


@pytest.fixture
def layout(small_survey) -> DataLayout:
    return DataLayout(small_survey.parent.parent)


def test_a_scene_survey_with_a_config_file(layout, small_survey):
    (small_survey / "image.tif").rename(small_survey / "ortho.tif")
    polygons = gpd.read_file(small_survey / "landslides.gpkg").to_crs("EPSG:4326")
    (small_survey / "landslides.gpkg").unlink()
    polygons.to_file(small_survey / "mapped.geojson")
    (small_survey / "survey.toml").write_text('site = "pit"\nimage = "ortho.tif"\nterrain_bands = ["hillshade"]\n'
                                              '[labels]\npath = "mapped.geojson"\n')
    result = run(layout, "tiny", {"survey_tiles": {"tile_size": 64, "stride": 64}})
    assert result.success
    meta = json.loads(layout.survey_metadata("tiny").read_text())
    assert (meta["site"], meta["labels_format"], meta["n_label_polygons"]) == ("pit", "geojson", 1)
    tiles = gpd.read_parquet(layout.tiles("tiny") / TILE_INDEX)
    TileIndex.validate(tiles)
    assert len(tiles) == 20 and tiles.crs == "EPSG:32650"
    x, y, terrain = contract_tile(layout, "tiny", use_terrain=True)
    # Every terrain band the tiles hold reaches the training set; models pick their input set from them.
    assert terrain == ["elevation", "slope", "hillshade"]
    assert x.shape == (6, 64, 64) and y.shape == (64, 64)
    with rasterio.open(layout.tiles("tiny") / "terrain" / "r000000_c000000.tif") as src:
        assert src.descriptions == ("elevation", "slope", "hillshade")


def test_a_pre_cut_data_set_survey(tmp_path):
    data = tmp_path / "elsewhere" / "dataset"
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 255, (3, 96, 96), dtype=np.uint8)
        mask = np.zeros((1, 96, 96), np.uint8)
        mask[0, :10, :20] = 255
        for folder, array in (("images", pixels), ("masks", mask)):
            (data / folder).mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(data / folder / f"{i}.png", "w", driver="PNG", width=96, height=96,
                                   count=array.shape[0], dtype="uint8") as dst:
                    dst.write(array)
    layout = DataLayout(tmp_path / "data")
    survey = layout.raw_survey("pngs")
    survey.mkdir(parents=True)
    (survey / "survey.toml").write_text(
        'kind = "tiles"\nsource = "../../../elsewhere/dataset"\n'
        '[adapter]\n[adapter.image]\npattern = "images/*.png"\n'
        '[adapter.mask]\npattern = "masks/*.png"\nencoding = "0/255"\n')
    assert run(layout, "pngs", {"survey_tiles": {"tile_size": 64}}).success
    tiles = gpd.read_parquet(layout.tiles("pngs") / TILE_INDEX)
    assert len(tiles) == 3 * 4 and (tiles.row_off == -1).all() and (tiles.col_off == -1).all()
    labels = gpd.read_parquet(layout.labels("manual", "pngs") / LABEL_INDEX)
    assert labels.landslide_fraction.sum() == pytest.approx(3 * 10 * 20 / 64**2)
    x, y, terrain = contract_tile(layout, "pngs", use_terrain=False)
    assert terrain == []
    assert x.shape == (3, 64, 64) and set(np.unique(y)) <= {0, 1}


def test_the_empty_tile_filter_thins_the_labelled_set(layout):
    result = run(layout, "tiny", {"survey_tiles": {"tile_size": 64},
                                  "manual_labels": {"keep_empty_fraction": 0.0}})
    labels = gpd.read_parquet(layout.labels("manual", "tiny") / LABEL_INDEX)
    # The landslide covers pixels 40..79 of rows and columns: the four tiles it touches stay.
    assert sorted(labels.tile_id) == ["r000000_c000000", "r000000_c000064", "r000064_c000000", "r000064_c000064"]
    assert len(list((layout.labels("manual", "tiny") / "masks").iterdir())) == 4
    assert len(gpd.read_parquet(layout.tiles("tiny") / TILE_INDEX)) == 20  # every tile stays for mapping
    assert result.asset_materializations_for_node("manual_labels")[0].metadata["dropped_empty_tiles"].value == 16


def test_a_failed_run_leaves_the_previous_output_and_no_partial_files(layout, small_survey):
    assert run(layout, "tiny", {"survey_tiles": {"tile_size": 64}}).success
    before = sorted(p.name for p in (layout.tiles("tiny") / "image").iterdir())
    image = small_survey / "image.tif"
    with rasterio.open(image) as src:
        pixels, profile = src.read(), src.profile
    profile.update(tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(image, "w", **profile) as dst:
        dst.write(pixels)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) * 2 // 3])  # header intact, last rows of blocks missing
    result = run(layout, "tiny", {"survey_tiles": {"tile_size": 64}}, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "image.tif: cannot read pixels" in str(failure.event_specific_data.error)
    assert sorted(p.name for p in (layout.tiles("tiny") / "image").iterdir()) == before
    assert [p.name for p in layout.tiles("tiny").parent.iterdir()] == ["tiny"]  # no staging folder left


def test_removing_a_surveys_labels_removes_its_masks_and_it_leaves_the_training_set(layout, small_survey):
    from landslide_pipeline.training.dataset import labelled_surveys

    assert run(layout, "tiny", {"survey_tiles": {"tile_size": 64}}).success
    assert [s.tiles["survey_id"].iloc[0] for s in labelled_surveys(layout, ["tiny"], "manual")] == ["tiny"]
    (small_survey / "landslides.gpkg").unlink()
    result = run(layout, "tiny", {"survey_tiles": {"tile_size": 64}})
    assert result.asset_materializations_for_node("manual_labels")[0].metadata["removed_earlier_labels"].value
    assert not layout.labels("manual", "tiny").exists()
    assert [p.name for p in layout.labels("manual", "tiny").parent.iterdir()] == []  # no trash or lock left
    assert labelled_surveys(layout, ["tiny"], "manual") == []
