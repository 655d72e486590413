"""The synthetic survey's files: layout, georeferencing, labels, determinism and atomic writing."""

from dataclasses import replace

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from shapely.geometry import box

from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey
from landslide_pipeline.synthetic import survey as survey_module
from landslide_pipeline_tests.synthetic.conftest import SMALL, SPEC, read, slope_deg

FILES = {"image.tif", "dem.tif", "landslides.gpkg", "ground_truth.tif"}


def test_writes_the_survey_layout_and_nothing_else(survey):
    assert {p.name for p in survey.directory.iterdir()} == FILES
    assert [p.name for p in survey.directory.parent.iterdir()] == ["pit"]
    assert survey.image == survey.directory / "image.tif"
    assert survey.dem == survey.directory / "dem.tif"
    assert survey.landslides == survey.directory / "landslides.gpkg"
    assert survey.ground_truth == survey.directory / "ground_truth.tif"


def test_image_is_a_tiled_georeferenced_rgb_geotiff(survey):
    with rasterio.open(survey.image) as src:
        assert src.crs == CRS.from_string("EPSG:32650") and src.crs.is_projected
        assert src.transform == from_origin(500_000.0, 4_400_000.0, 0.25, 0.25)
        assert src.res == (0.25, 0.25)
        assert (src.width, src.height, src.count) == (384, 384, 3)
        assert src.dtypes == ("uint8", "uint8", "uint8")
        assert src.descriptions == ("red", "green", "blue")
        assert [c.name for c in src.colorinterp] == ["red", "green", "blue"]
        assert src.compression.name == "deflate"
        assert src.block_shapes == [(256, 256)] * 3


def test_dem_shares_the_image_grid_and_holds_a_benched_pit(survey):
    with rasterio.open(survey.image) as image, rasterio.open(survey.dem) as src:
        assert (src.crs, src.transform, src.shape) == (image.crs, image.transform, image.shape)
        assert src.count == 1 and src.dtypes == ("float32",)
        assert src.nodata == -9999.0
        dem = src.read(1)
    assert np.isfinite(dem).all() and not (dem == -9999.0).any()
    centre, border = dem[160:224, 160:224], np.concatenate([dem[:20].ravel(), dem[-20:].ravel()])
    assert np.median(border) - np.median(centre) > 10.0
    slope = slope_deg(dem, 0.25)
    # Benches: steep faces and flat berms, few moderate slopes between them.
    assert (slope > 50).mean() > 0.05
    assert (slope < 12).mean() > 0.4


def test_labels_are_valid_polygons_in_the_image_crs_and_bounds(survey):
    assert [tuple(layer) for layer in pyogrio.list_layers(survey.landslides)] == [("landslides", "Polygon")]
    labels = gpd.read_file(survey.landslides, layer="landslides")
    with rasterio.open(survey.image) as src:
        image_crs, bounds = src.crs, box(*src.bounds)
    assert list(labels.columns) == ["landslide_id", "geometry"]
    assert CRS.from_user_input(labels.crs) == image_crs
    assert len(labels) == SPEC.n_landslides
    assert labels["landslide_id"].tolist() == list(range(1, SPEC.n_landslides + 1))
    assert np.issubdtype(labels["landslide_id"].dtype, np.integer)
    assert (labels.geom_type == "Polygon").all() and labels.is_valid.all()
    assert labels.within(bounds).all()


def test_survey_passes_the_pipeline_input_checks(survey):
    # Imported here: the other tests of the generator do not depend on the survey readers.
    from landslide_pipeline.surveys import open_survey

    meta = open_survey(survey.directory, "pit").inspect()
    assert meta.has_dem and meta.n_label_polygons == SPEC.n_landslides
    assert (meta.width, meta.height, meta.bands, meta.dtype) == (384, 384, 3, "uint8")


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    first = generate_survey(tmp_path / "a", SMALL)
    again = generate_survey(tmp_path / "b", SMALL)
    other = generate_survey(tmp_path / "c", replace(SMALL, seed=SMALL.seed + 1))
    for name in ("image", "dem", "ground_truth"):
        assert np.array_equal(read(getattr(first, name)), read(getattr(again, name))), name
        assert not np.array_equal(read(getattr(first, name)), read(getattr(other, name))), name
    labels_a, labels_b = gpd.read_file(first.landslides), gpd.read_file(again.landslides)
    assert all(a.equals_exact(b, 0.0) for a, b in zip(labels_a.geometry, labels_b.geometry))


def test_zero_landslides_gives_empty_labels_and_truth(tmp_path):
    result = generate_survey(tmp_path / "calm", replace(SMALL, n_landslides=0))
    assert len(gpd.read_file(result.landslides, layer="landslides")) == 0
    assert not read(result.ground_truth).any()


def test_refuses_a_non_empty_out_dir_and_leaves_it_alone(tmp_path):
    out = tmp_path / "survey"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_survey(out, SMALL)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["survey"]


def test_fills_an_existing_empty_out_dir(tmp_path):
    out = tmp_path / "survey"
    out.mkdir()
    generate_survey(out, replace(SMALL, n_landslides=1))
    assert {p.name for p in out.iterdir()} == FILES
    assert [p.name for p in tmp_path.iterdir()] == ["survey"]


def test_a_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    written = []
    real_write_image = survey_module._write_image

    def write_image(path, *args):
        real_write_image(path, *args)
        written.append(path)

    def broken_write_dem(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(survey_module, "_write_image", write_image)
    monkeypatch.setattr(survey_module, "_write_dem", broken_write_dem)
    with pytest.raises(OSError, match="disk full"):
        generate_survey(tmp_path / "raw" / "survey", SMALL)
    assert written, "the failure should strike after a file was written"
    assert list((tmp_path / "raw").iterdir()) == []


@pytest.mark.parametrize("bad", [
    dict(size_px=64), dict(pixel_size_m=0.0), dict(n_landslides=-1), dict(size_px=200, pixel_size_m=0.1),
])
def test_spec_rejects_impossible_scenes(bad):
    with pytest.raises(ValueError):
        SyntheticSurveySpec(**bad)
