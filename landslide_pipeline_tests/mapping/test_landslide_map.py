import pytest

from landslide_pipeline.mapping.landslide_map import NoModelForSurveyError, mapping_alias

SLOPE_MODEL = ["red", "green", "blue", "slope"]
RGB_MODEL = ["red", "green", "blue"]


def registry(**aliases):
    return lambda alias: aliases.get(alias.replace("-", "_"))


def test_a_survey_with_a_dem_is_mapped_with_the_alias_asked_for():
    assert mapping_alias("champion", True, registry(champion=SLOPE_MODEL, champion_rgb=RGB_MODEL)) == "champion"


def test_a_survey_without_a_dem_falls_back_to_the_image_only_model():
    assert mapping_alias("champion", False, registry(champion=SLOPE_MODEL, champion_rgb=RGB_MODEL)) == "champion-rgb"
    assert mapping_alias("challenger", False, registry(challenger=SLOPE_MODEL, challenger_rgb=RGB_MODEL)) == \
        "challenger-rgb"
    # An image-only champion maps it as it is.
    assert mapping_alias("champion", False, registry(champion=RGB_MODEL)) == "champion"


def test_no_model_for_the_survey_says_what_to_train():
    with pytest.raises(NoModelForSurveyError, match="no DEM.*linknet@rgb"):
        mapping_alias("champion", False, registry(champion=SLOPE_MODEL))
    with pytest.raises(NoModelForSurveyError, match="no registered model has the alias 'best'"):
        mapping_alias("best", True, registry(champion=SLOPE_MODEL))
