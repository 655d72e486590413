"""Surveys of every kind behind one protocol: open one with ``open_survey`` and ask it."""

from landslide_pipeline.storage import fingerprint
from landslide_pipeline.surveys.base import Survey, SurveyMetadata
from landslide_pipeline.surveys.registry import SURVEY_KINDS, open_survey
from landslide_pipeline.surveys.scene import SceneSurvey
from landslide_pipeline.surveys.tileset import TileSetSurvey

__all__ = ["SURVEY_KINDS", "SceneSurvey", "Survey", "SurveyMetadata", "TileSetSurvey", "fingerprint", "open_survey"]
