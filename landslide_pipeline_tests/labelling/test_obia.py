import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.labelling.obia import label_scene
from landslide_pipeline.labelling.rules import load_rules
from landslide_pipeline.labelling.scene import ArraySource, RasterSource
from landslide_pipeline.metrics import confusion_counts, segmentation_metrics
from landslide_pipeline.schemas import ObiaSegments
from landslide_pipeline.synthetic import generate_survey
from landslide_pipeline_tests.labelling.conftest import PIT_SPEC, array_source

RULES = load_rules(Path(__file__).resolve().parents[2] / "configs" / "obia_rules.toml")


def with_window(px: int):
    return dataclasses.replace(RULES, segmentation=dataclasses.replace(RULES.segmentation, window_px=px))


def scores(mask: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    return segmentation_metrics(confusion_counts(mask, reference))


@pytest.fixture(scope="module")
def labelled(pit_scene):
    with label_scene(array_source(pit_scene), RULES) as labels:
        yield labels


def test_default_rules_find_the_landslides_of_a_generated_pit(labelled, pit_scene):
    result = scores(labelled.mask(0, 0, 512, 512), pit_scene.ground_truth)
    assert result["f1"] > 0.8 and result["precision"] > 0.75 and result["recall"] > 0.75, result
    classes = set(labelled.objects["class"])
    assert {"vegetation", "landslide", "bare_rock"} <= classes


def test_the_object_table_is_valid_and_covers_the_scene(labelled):
    objects = labelled.objects
    ObiaSegments.validate(objects, lazy=True)
    assert objects["n_pixels"].sum() == 512 * 512
    assert objects.geometry.is_valid.all()
    assert objects.geometry.area.to_numpy() == pytest.approx(objects["area_m2"].to_numpy())
    assert list(objects.columns[:4]) == ["segment_id", "scale", "parent_40", "parent_80"]
    assert objects["landslide"].sum() == labelled.summary()["landslide_objects"]


def test_scales_nest_and_coarsen(labelled):
    segmentation = labelled.segmentation
    counts = [g.n_regions for g in segmentation.graphs]
    assert counts == sorted(counts, reverse=True) and counts[0] > 2 * counts[-1]
    fine = segmentation.objects(0, 0, 0, 512, 512)
    coarse = segmentation.objects(2, 0, 0, 512, 512)
    parents = segmentation.parents(0, 2)
    assert np.array_equal(parents[fine], coarse)


def test_objects_grow_across_window_borders(pit_scene, labelled):
    with label_scene(array_source(pit_scene), with_window(200)) as windowed:
        mask = windowed.mask(0, 0, 512, 512)
        ids = windowed.segmentation.objects(windowed.level, 0, 0, 512, 512)
        superpixels = windowed.segmentation.superpixels.read(0, 0, 512, 512)
    # No superpixel crosses a window border, but objects do.
    assert not np.intersect1d(superpixels[:, 199], superpixels[:, 200]).size
    assert np.intersect1d(ids[:, 199], ids[:, 200]).size > 5
    assert np.intersect1d(ids[199, :], ids[200, :]).size > 5
    assert scores(mask, pit_scene.ground_truth)["f1"] > 0.8
    assert scores(mask, labelled.mask(0, 0, 512, 512))["f1"] > 0.8


def test_nodata_pixels_belong_to_no_object(pit_scene):
    valid = np.ones((512, 512), dtype=bool)
    valid[:, :100] = False  # the first column of windows holds no data at all
    valid[300:340, 300:340] = False
    with label_scene(array_source(pit_scene, valid=valid), with_window(100)) as labels:
        ids = labels.segmentation.objects(labels.level, 0, 0, 512, 512)
        assert (ids[~valid] == -1).all() and (ids[valid] >= 0).all()
        assert not labels.mask(0, 0, 512, 512)[~valid].any()
        assert labels.objects["n_pixels"].sum() == valid.sum()


def test_without_a_dem_terrain_conditions_are_skipped(pit_scene):
    with label_scene(array_source(pit_scene, with_dem=False), RULES, outlines=False) as labels:
        assert labels.objects["mean_slope"].isna().all()
        skipped = {r["feature"] for r in labels.classification.thresholds if r["note"].startswith("skipped")}
        assert skipped == {"mean_slope", "elevation_diff"}
        assert "geometry" not in labels.objects


def test_files_read_like_arrays(tmp_path, pit_scene):
    survey = generate_survey(tmp_path / "pit", PIT_SPEC)
    with RasterSource(SceneFiles((survey.image,), survey.dem)) as source:
        assert (source.height, source.width, source.bands) == (512, 512, ("red", "green", "blue"))
        assert source.pixel_size_m() == pytest.approx((0.25, 0.25))
        from_file = source.read(100, 200, 64, 80)
    in_memory = array_source(pit_scene).read(100, 200, 64, 80)
    assert np.array_equal(from_file.image, in_memory.image) and from_file.valid.all()
    assert np.allclose(from_file.elevation, in_memory.elevation, atol=1e-3)
    assert np.allclose(from_file.slope, in_memory.slope, atol=1e-2)


def test_float_images_are_taken_as_reflectance_and_nan_as_nodata(pit_scene):
    image = pit_scene.image[:, :256, :256].astype(np.float32) / 255
    image[:, :20, :] = np.nan
    source = ArraySource(image, pit_scene.dem[:256, :256], array_source(pit_scene).transform, PIT_SPEC.crs)
    window = source.read(0, 0, 256, 256)
    assert not window.valid[:20].any() and window.valid[20:].all()
    assert np.allclose(window.image[:, 20:], pit_scene.image[:, 20:256, :256], atol=1e-3)
    with label_scene(source, RULES, outlines=False) as labels:
        assert (labels.segmentation.objects(labels.level, 0, 0, 256, 256)[:20] == -1).all()
        assert labels.objects["n_pixels"].sum() == 236 * 256


@pytest.mark.parametrize("n_bands", [1, 5])
def test_rules_that_need_rgb_refuse_other_band_counts_before_segmenting(tmp_path, pit_scene, n_bands, monkeypatch):
    from landslide_pipeline.geo.errors import SurveyInputError
    from landslide_pipeline.geo.tiling import TilingSpec
    from landslide_pipeline.labelling.tiles import label_survey_objects
    from landslide_pipeline.surveys import open_survey
    from landslide_pipeline_tests.conftest import write_raster

    folder = tmp_path / "multi"
    folder.mkdir()
    write_raster(folder / "image.tif", np.resize(pit_scene.image[:, :128, :128], (n_bands, 128, 128)))
    survey = open_survey(folder)
    index = survey.tile(tmp_path / "tiles", TilingSpec(64))
    names = [f"band_{i + 1}" for i in range(n_bands)]
    monkeypatch.setattr("landslide_pipeline.labelling.obia.segment_scene", pytest.fail)  # refused before it
    with pytest.raises(SurveyInputError, match=rf"image.tif: {n_bands} band\(s\) named {re.escape(str(names))}, "
                                               r"but the OBIA rules .*obia_rules.toml use features these bands "
                                               r"cannot give: redness needs red\+green\+blue; vegetation needs "
                                               r"red\+green\+blue \(ExG\) or nir\+red \(NDVI\)"):
        label_survey_objects(survey.scene, index, RULES, tmp_path)


def test_named_rgb_bands_of_a_four_band_image_pass_the_band_check():
    from landslide_pipeline.labelling.obia import check_rule_bands

    check_rule_bands(RULES, ("red", "green", "blue", "nir"), "image.tif")
