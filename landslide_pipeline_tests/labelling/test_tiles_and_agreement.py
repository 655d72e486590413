from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin
from shapely.geometry import box

from landslide_pipeline.geo.grid import tile_id
from landslide_pipeline.labelling.agreement import (
    agreement_table,
    compare_sources,
    compare_with_truth,
    survey_agreement,
)
from landslide_pipeline.labelling.tiles import TileGridError, TileMasks, check_tile_grid
from landslide_pipeline.schemas import LabelAgreement

TRANSFORM = from_origin(500_000.0, 4_400_000.0, 0.5, 0.5)


def tile_index(size: int = 4, step: int = 4, extent: int = 8) -> gpd.GeoDataFrame:
    rows = []
    for r in range(0, extent - size + 1, step):
        for c in range(0, extent - size + 1, step):
            x0, y0 = TRANSFORM * (c, r + size)
            x1, y1 = TRANSFORM * (c + size, r)
            rows.append(dict(survey_id="s", tile_id=tile_id(r, c), row_off=r, col_off=c, height=size, width=size,
                             nodata_fraction=0.0, geometry=box(x0, y0, x1, y1)))
    return gpd.GeoDataFrame(rows, crs="EPSG:32650")


def write_masks(folder: Path, index: pd.DataFrame, scene: np.ndarray) -> Path:
    (folder / "masks").mkdir(parents=True)
    for t in index.itertuples():
        transform = TRANSFORM * Affine.translation(t.col_off, t.row_off)
        with rasterio.open(folder / "masks" / f"{t.tile_id}.tif", "w", driver="GTiff", width=t.width,
                           height=t.height, count=1, dtype="uint8", crs="EPSG:32650", transform=transform) as dst:
            dst.write(scene[t.row_off:t.row_off + t.height, t.col_off:t.col_off + t.width][None])
    return folder


def test_tile_masks_read_back_as_scene_windows(tmp_path):
    scene = (np.arange(64).reshape(8, 8) % 3 == 0).astype(np.uint8)
    index = tile_index().iloc[:3]  # the lower right tile is missing
    reader = TileMasks(index, write_masks(tmp_path / "manual", index, scene) / "masks")
    mask, known = reader(2, 2, 6, 6)
    assert known[:2].all() and not known[2:, 2:].any()
    assert np.array_equal(mask[known], scene[2:, 2:][known]) and not mask[~known].any()


def test_the_tile_grid_must_be_the_scene_grid():
    index = tile_index()
    check_tile_grid(index, 8, 8, TRANSFORM)
    with pytest.raises(TileGridError, match="outside"):
        check_tile_grid(index, 6, 8, TRANSFORM)
    with pytest.raises(TileGridError, match="another image"):
        check_tile_grid(index, 8, 8, from_origin(500_010.0, 4_400_000.0, 0.5, 0.5))
    with pytest.raises(TileGridError, match="pre-cut"):
        check_tile_grid(index.assign(row_off=-1, col_off=-1), 8, 8, TRANSFORM)


def test_agreement_counts_pixels_of_the_common_tiles(tmp_path):
    index = tile_index()
    truth = np.zeros((8, 8), dtype=np.uint8)
    truth[1:5, 1:5] = 1
    drawn = np.zeros_like(truth)
    drawn[1:5, 2:6] = 1  # shifted one column: 12 shared, 4 missed, 4 extra pixels
    obia = write_masks(tmp_path / "obia", index, drawn)
    manual = write_masks(tmp_path / "manual", index.iloc[:3], truth)
    row = compare_sources("s", ("obia", index, obia), ("manual", index.iloc[:3], manual))
    # The lower right tile is not in both: pixels (4, 4..5) of it do not count.
    assert (row["n_tiles"], row["tp"], row["fp"], row["fn"]) == (3, 11, 3, 4)
    assert row["f1"] == pytest.approx(22 / 29)
    with rasterio.open(tmp_path / "truth.tif", "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                       crs="EPSG:32650", transform=TRANSFORM) as dst:
        dst.write(truth[None])
    against_truth = compare_with_truth("s", ("obia", index, obia), tmp_path / "truth.tif")
    assert (against_truth["tp"], against_truth["fp"], against_truth["fn"], against_truth["tn"]) == (12, 4, 4, 44)
    table = agreement_table(survey_agreement("s", {"obia": (index, obia), "manual": (index.iloc[:3], manual)},
                                             "obia", "manual", tmp_path / "truth.tif"))
    LabelAgreement.validate(table)
    assert table[["source", "reference"]].values.tolist() == [
        ["obia", "manual"], ["obia", "ground_truth"], ["manual", "ground_truth"]]
    assert table.loc[2, "f1"] == 1.0


def test_agreement_schema_refuses_inconsistent_rows():
    good = dict(survey_id="s", source="obia", reference="manual", n_tiles=2, tp=10, fp=5, fn=5, tn=80,
                precision=2 / 3, recall=2 / 3, f1=2 / 3, iou=0.5, accuracy=0.9, kappa=0.6,
                source_fraction=0.15, reference_fraction=0.15)
    LabelAgreement.validate(agreement_table([good]))
    for bad in (dict(f1=0.9), dict(reference="obia"), dict(kappa=1.5)):
        with pytest.raises(pa.errors.SchemaError):
            LabelAgreement.validate(agreement_table([{**good, **bad}]))
    with pytest.raises(pa.errors.SchemaError):
        LabelAgreement.validate(agreement_table([good, good]))
    LabelAgreement.validate(agreement_table([]))  # a survey without labels to compare
