"""The one place that turns a survey folder into a survey of its kind."""

from __future__ import annotations

from pathlib import Path

from landslide_pipeline.layout import validate_survey_id
from landslide_pipeline.surveys.base import Survey
from landslide_pipeline.surveys.config import SurveyConfig, load_survey_config
from landslide_pipeline.surveys.scene import SceneSurvey
from landslide_pipeline.surveys.tileset import TileSetSurvey

#: survey.toml ``kind`` -> the class that reads that kind of survey.
SURVEY_KINDS: dict[str, type[SceneSurvey] | type[TileSetSurvey]] = {
    SceneSurvey.kind: SceneSurvey,
    TileSetSurvey.kind: TileSetSurvey,
}


def open_survey(survey_dir: Path, survey_id: str | None = None) -> Survey:
    """The survey in ``survey_dir``, its files located (no pixel is read).

    Args:
        survey_dir: ``data/raw/<survey_id>/``.
        survey_id: The survey's id; default the folder's name.

    Raises:
        InvalidSurveyIdError: the id has path separators, ``..`` or a leading dot.
        SurveyInputError: an invalid survey.toml, or a missing image, DEM, label file or data set.
    """
    survey_dir = Path(survey_dir)
    survey_id = validate_survey_id(survey_id if survey_id is not None else survey_dir.name)
    config: SurveyConfig = load_survey_config(survey_dir)
    return SURVEY_KINDS[config.kind].from_config(survey_id, config)
