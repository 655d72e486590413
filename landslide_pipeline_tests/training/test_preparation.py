import json

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box

from landslide_pipeline.layout import LABEL_INDEX, TRAINING_FOLDS, DataLayout
from landslide_pipeline.training.dataset import labelled_surveys
from landslide_pipeline.training.preparation import FoldOptions, fold_table
from landslide_pipeline_tests.conftest import write_raster

SIZE = 16


def label(layout: DataLayout, source: str, survey_id: str, masks: dict[str, np.ndarray], role: str = "train") -> None:
    """Label masks of some tiles of a survey, as the labelling assets leave them."""
    folder = layout.labels(source, survey_id)
    (folder / "masks").mkdir(parents=True)
    for tile_id, mask in masks.items():
        write_raster(folder / "masks" / f"{tile_id}.tif", mask.astype(np.uint8))
    rows = [{"survey_id": survey_id, "tile_id": t, "row_off": 0, "col_off": SIZE * i, "height": SIZE, "width": SIZE,
             "landslide_fraction": float(m.mean()), "geometry": box(SIZE * i, 0, SIZE * (i + 1), SIZE)}
            for i, (t, m) in enumerate(masks.items())]
    gpd.GeoDataFrame(rows, crs="EPSG:32650").to_parquet(folder / LABEL_INDEX)
    layout.survey_metadata(survey_id).parent.mkdir(parents=True, exist_ok=True)
    layout.survey_metadata(survey_id).write_text(json.dumps({"role": role}))


def half(side: str) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    if side == "left":
        mask[:, : SIZE // 2] = 1
    else:
        mask[:, SIZE // 2:] = 1
    return mask


def test_the_union_takes_every_labelled_tile_and_the_pixelwise_union_where_both_label(tmp_path):
    layout = DataLayout(tmp_path)
    label(layout, "manual", "a", {"t0": half("left"), "t1": half("left")})
    label(layout, "obia", "a", {"t0": half("right"), "t2": half("right")})
    label(layout, "obia", "b", {"t0": half("right")})  # a survey nobody drew on
    surveys = labelled_surveys(layout, ["a", "b"], "union")
    assert [s.tiles["survey_id"].iloc[0] for s in surveys] == ["a", "b"]
    a, b = surveys
    assert sorted(a.tiles["tile_id"]) == ["t0", "t1", "t2"]
    assert a.mask("t0").all()  # left half drawn by hand, right half object-oriented
    np.testing.assert_array_equal(a.mask("t1"), half("left"))
    np.testing.assert_array_equal(a.mask("t2"), half("right"))
    assert a.tiles.set_index("tile_id").loc["t0", "landslide_fraction"] == 0.5
    np.testing.assert_array_equal(b.mask("t0"), half("right"))
    assert [s.tiles["survey_id"].iloc[0] for s in labelled_surveys(layout, ["a", "b"], "manual")] == ["a"]


def test_a_survey_to_map_only_never_enters_a_training_set(tmp_path):
    layout = DataLayout(tmp_path)
    label(layout, "manual", "a", {"t0": half("left")})
    label(layout, "obia", "monitored", {"t0": half("right")}, role="map")
    for source in ("obia", "union"):
        assert [s.tiles["survey_id"].iloc[0] for s in labelled_surveys(layout, ["a", "monitored"], source)] == (
            ["a"] if source == "union" else [])


def test_tiles_only_another_source_labels_get_folds_of_their_own_and_shared_ones_inherit(tmp_path):
    layout = DataLayout(tmp_path)
    shared = {f"t{i}": half("left") for i in range(6)}
    label(layout, "manual", "a", shared)
    label(layout, "obia", "a", {**shared, **{f"x{i}": half("right") for i in range(6)}})
    options = FoldOptions(n_folds=2, strategy="random", test_fraction=0.0)
    manual = fold_table(labelled_surveys(layout, ["a"], "manual"), options, None)
    (tmp_path / "manual_set").mkdir()
    manual.assign(fold=[0, 1, 0, 1, 0, -1]).to_parquet(tmp_path / "manual_set" / TRAINING_FOLDS)
    obia = fold_table(labelled_surveys(layout, ["a"], "obia"), options, tmp_path / "manual_set").set_index("tile_id")
    assert len(obia) == 12
    assert list(obia.loc[[f"t{i}" for i in range(6)], "fold"]) == [0, 1, 0, 1, 0, -1]  # inherited, test split too
    own = obia.loc[[f"x{i}" for i in range(6)], "fold"]
    assert set(own) == {0, 1}  # assigned, both folds
    with_nothing_shared = fold_table(labelled_surveys(layout, ["a"], "obia"), options, tmp_path / "missing")
    assert len(with_nothing_shared) == 12 and isinstance(with_nothing_shared, pd.DataFrame)
