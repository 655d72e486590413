"""The object-oriented label assets, materialized on a small generated survey."""

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import rasterio
from dagster import DagsterInstance, materialize

from landslide_pipeline.defs.labelling_assets import (
    agreement_path,
    label_agreement,
    label_agreement_schema,
    obia_labels,
)
from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.defs.survey_assets import manual_labels, raw_survey, survey_tiles
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.schemas import LabelAgreement, ObiaSegments, TileIndex
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey

SURVEY = "small_pit"
SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "obia_rules.toml"
ASSETS = [raw_survey, survey_tiles, manual_labels, obia_labels, label_agreement, label_agreement_schema]


def run(layout: DataLayout, instance: DagsterInstance, obia_config: dict | None = None):
    config = {"survey_tiles": {"config": {"tile_size": 64}},
              "obia_labels": {"config": {"rules_path": str(SHIPPED), **(obia_config or {})}}}
    return materialize(ASSETS, partition_key=SURVEY, instance=instance, run_config={"ops": config},
                       resources={"data_store": DataStore(root=str(layout.root))})


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    layout = DataLayout(tmp_path_factory.mktemp("project") / "data")
    generate_survey(layout.raw_survey(SURVEY), SyntheticSurveySpec(size_px=384, n_landslides=4, seed=5))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("survey", [SURVEY])
    return layout, instance, run(layout, instance)


def test_object_labels_have_the_manual_labels_layout(materialized):
    layout, _, result = materialized
    assert result.success
    obia, manual = layout.labels("obia", SURVEY), layout.labels("manual", SURVEY)
    labels, manual_table = pd.read_parquet(obia / "labels.parquet"), pd.read_parquet(manual / "labels.parquet")
    TileIndex.validate(labels)
    assert labels["tile_id"].tolist() == manual_table["tile_id"].tolist()
    for tile in labels.itertuples():
        with rasterio.open(obia / "masks" / f"{tile.tile_id}.tif") as ours, \
                rasterio.open(manual / "masks" / f"{tile.tile_id}.tif") as theirs:
            assert (ours.profile["dtype"], ours.shape, ours.transform, ours.crs) == \
                   (theirs.profile["dtype"], theirs.shape, theirs.transform, theirs.crs)
            mask = ours.read(1)
            assert set(mask.ravel()) <= {0, 1}
            assert mask.mean() == pytest.approx(tile.landslide_fraction)
    assert sorted(p.name for p in obia.iterdir()) == ["labels.parquet", "masks", "segments.parquet",
                                                      "thresholds.json"]


def test_segments_and_thresholds_are_written(materialized):
    layout, _, result = materialized
    segments = gpd.read_parquet(layout.labels("obia", SURVEY) / "segments.parquet")
    ObiaSegments.validate(segments)
    assert segments.crs.to_epsg() == 32650 and segments["landslide"].any()
    logged = json.loads((layout.labels("obia", SURVEY) / "thresholds.json").read_text())
    assert {r["class"] for r in logged["thresholds"]} >= {"vegetation", "landslide", "grow"}
    metadata = result.asset_materializations_for_node("obia_labels")[0].metadata
    assert metadata["labelled"].value is True and not metadata["samples_from_manual"].value
    assert "landslide" in metadata["thresholds"].value


def test_agreement_table_and_its_check(materialized):
    layout, _, result = materialized
    table = pd.read_parquet(agreement_path(layout, SURVEY))
    LabelAgreement.validate(table)
    assert table[["source", "reference"]].values.tolist() == [
        ["obia", "manual"], ["obia", "ground_truth"], ["manual", "ground_truth"]]
    assert (table["f1"] > 0.6).all(), table
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("label_agreement_schema", True)]


def test_quantile_thresholds_take_manual_labels_as_samples(materialized, tmp_path):
    layout, instance, _ = materialized
    rules = SHIPPED.read_text().replace('{ feature = "glcm_contrast", op = ">", value = 1.5 }',
                                        '{ feature = "glcm_contrast", op = ">", quantile = 0.02, fallback = 1.5 }')
    path = tmp_path / "sampled.toml"
    path.write_text(rules)
    result = materialize([obia_labels], partition_key=SURVEY, instance=instance,
                         run_config={"ops": {"obia_labels": {"config": {"rules_path": str(path)}}}},
                         resources={"data_store": DataStore(root=str(layout.root))})
    assert result.asset_materializations_for_node("obia_labels")[0].metadata["samples_from_manual"].value
    logged = json.loads((layout.labels("obia", SURVEY) / "thresholds.json").read_text())["thresholds"]
    sampled = [r for r in logged if r["method"] == "quantile"]
    assert len(sampled) == 1 and sampled[0]["note"] == "q0.02" and sampled[0]["n_objects"] >= 5


def test_a_mosaic_survey_gets_the_same_object_labels_as_its_single_image(materialized, tmp_path):
    layout, _, _ = materialized
    from rasterio.windows import Window

    single = layout.raw_survey(SURVEY)
    mosaic_layout = DataLayout(tmp_path / "data")
    folder = mosaic_layout.raw_survey(SURVEY)
    (folder / "crops").mkdir(parents=True)
    with rasterio.open(single / "image.tif") as src:
        half = src.width // 2
        halves = {"west": Window(0, 0, half, src.height), "east": Window(half, 0, src.width - half, src.height)}
        for name, window in halves.items():
            profile = {**src.profile, "width": window.width, "height": window.height,
                       "transform": src.window_transform(window)}
            with rasterio.open(folder / "crops" / f"{name}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
    for name in ("dem.tif", "landslides.gpkg"):
        (folder / name).write_bytes((single / name).read_bytes())
    (folder / "survey.toml").write_text('image = "crops/*.tif"\n')
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("survey", [SURVEY])
    assert run(mosaic_layout, instance).success
    for tile in pd.read_parquet(layout.labels("obia", SURVEY) / "labels.parquet").itertuples():
        with rasterio.open(layout.labels("obia", SURVEY) / "masks" / f"{tile.tile_id}.tif") as a, \
                rasterio.open(mosaic_layout.labels("obia", SURVEY) / "masks" / f"{tile.tile_id}.tif") as b:
            assert (a.read(1) == b.read(1)).all(), tile.tile_id
