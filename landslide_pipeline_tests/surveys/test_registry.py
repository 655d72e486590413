"""Both kinds of survey behind one protocol: what an asset asks, each kind answers."""

import numpy as np
import pytest

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.layout import InvalidSurveyIdError
from landslide_pipeline.surveys import SceneSurvey, TileSetSurvey, fingerprint, open_survey
from landslide_pipeline_tests.datasets.test_precut import scene, square_mask, write_plain


def tile_set(tmp_path, with_masks=True):
    """A survey folder whose survey.toml points at three 64 px GeoTIFF tiles (and their masks)."""
    root = tmp_path / "dataset"
    for i in (1, 2, 3):
        write_plain(root / "img" / f"t_{i}.tif", scene(64, 64, seed=i))
        if with_masks:
            write_plain(root / "msk" / f"t_{i}.tif", square_mask(64, 64)[None])
    survey = tmp_path / "raw" / "precut"
    survey.mkdir(parents=True)
    mask = '[adapter.mask]\npattern = "msk/t_*.tif"\nencoding = "0/1"\n' if with_masks else ""
    (survey / "survey.toml").write_text(f'kind = "tiles"\nsource = "{root}"\n'
                                        f'[adapter.image]\npattern = "img/t_*.tif"\n{mask}')
    return survey


def test_a_scene_survey_answers_for_its_scene(small_survey, tmp_path):
    survey = open_survey(small_survey)
    assert isinstance(survey, SceneSurvey) and survey.survey_id == "tiny"
    assert survey.can_map and survey.has_labels and survey.scene.dem == small_survey / "dem.tif"
    assert [p.name for p in survey.files()] == ["image.tif", "dem.tif", "landslides.gpkg"]
    index = survey.tile(tmp_path / "tiles", TilingSpec(64))
    labelled = survey.label(index, tmp_path / "labels")
    assert survey.inspect().kind == "scene" and labelled["landslide_fraction"].max() > 0


def test_a_tile_set_survey_has_no_scene_but_tiles_and_masks(tmp_path):
    survey = open_survey(tile_set(tmp_path))
    assert isinstance(survey, TileSetSurvey)
    assert survey.scene is None and not survey.can_map and survey.has_labels
    meta = survey.inspect()
    assert (meta.kind, meta.n_images, meta.bands, meta.labels_format) == ("tiles", 3, 3, "mask")
    assert len(survey.files()) == 1 + 3 + 3  # survey.toml, images, masks
    index = survey.tile(tmp_path / "tiles", TilingSpec(64))
    labelled = survey.label(index, tmp_path / "labels")
    np.testing.assert_allclose(labelled["landslide_fraction"], square_mask(64, 64).mean())


def test_a_survey_without_labels_refuses_to_label(small_survey, tmp_path):
    (small_survey / "landslides.gpkg").unlink()
    unlabelled = [open_survey(small_survey), open_survey(tile_set(tmp_path, with_masks=False))]
    for survey in unlabelled:
        assert not survey.has_labels
        with pytest.raises(SurveyInputError, match="the survey has no labels"):
            survey.label(None, tmp_path / "labels")


def test_the_fingerprint_follows_the_files_of_either_kind(small_survey, tmp_path):
    survey = open_survey(tile_set(tmp_path))
    before = fingerprint(survey.files())
    write_plain(tmp_path / "dataset" / "msk" / "t_2.tif", np.zeros((1, 64, 64), np.uint8))
    assert fingerprint(survey.files()) != before


def test_the_survey_id_is_the_folder_name_and_is_checked(small_survey):
    assert open_survey(small_survey, "other").survey_id == "other"
    with pytest.raises(InvalidSurveyIdError):
        open_survey(small_survey, "../up")
