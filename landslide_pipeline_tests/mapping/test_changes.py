import geopandas as gpd
import pytest
from shapely.geometry import box

from landslide_pipeline.mapping.changes import ChangeRules, change_summary, detect_changes

UTM = "EPSG:32650"


def landslides(*boxes, crs=UTM) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=[box(*b) for b in boxes], crs=crs)


@pytest.fixture
def maps():
    previous = landslides((0, 0, 10, 10), (100, 0, 110, 10), (200, 0, 210, 10), (300, 0, 310, 10))
    current = landslides(
        (0, 0, 10, 10),          # stable: same outline
        (100, 0, 110, 20),       # grown: 100 -> 200 m2 (+100 m2, +100 %)
        (200, 0, 210, 10.5),     # stable: +5 m2, under both thresholds
        (500, 0, 530, 10),       # new: 300 m2
        (309.5, 0, 320, 10),     # touches the 4th previous one by 5 m2 ... matched, so not new
    )
    return previous, current


def test_new_grown_stable_and_gone(maps):
    previous, current = maps
    changes = detect_changes(previous, current, ChangeRules(min_growth_m2=50, min_growth_fraction=0.2))
    current_rows = changes[changes["current_id"] >= 0].set_index("current_id")
    assert list(current_rows["change"]) == ["stable", "grown", "stable", "new", "stable"]
    grown = current_rows.loc[1]
    assert (grown["area_m2"], grown["previous_area_m2"], grown["growth_m2"]) == pytest.approx((200, 100, 100))
    assert grown["growth_fraction"] == pytest.approx(1.0)
    assert current_rows.loc[3, "previous_ids"] == ""
    assert (changes["change"] == "gone").sum() == 0
    summary = change_summary(changes, ChangeRules(alert_area_m2=350))
    assert (summary["n_new"], summary["n_grown"], summary["n_stable"]) == (1, 1, 3)
    assert summary["flagged_area_m2"] == pytest.approx(300 + 100)
    assert summary["alert"]
    assert not change_summary(changes, ChangeRules(alert_area_m2=1000))["alert"]


def test_a_bare_touch_is_no_match_and_vanished_landslides_are_gone():
    previous = landslides((0, 0, 10, 10), (50, 50, 60, 60))
    current = landslides((10, 0, 20, 10))  # shares only an edge with the first
    changes = detect_changes(previous, current, ChangeRules())
    assert list(changes["change"]) == ["new", "gone", "gone"]
    assert changes.loc[changes["change"] == "gone", "previous_area_m2"].tolist() == [100, 100]


def test_previous_map_in_another_crs_is_reprojected():
    current = landslides((500_000, 4_400_000, 500_020, 4_400_020))
    previous = current.to_crs("EPSG:4326")
    changes = detect_changes(previous, current, ChangeRules())
    assert list(changes["change"]) == ["stable"]
    assert changes["growth_m2"].abs().iloc[0] < 1.0


def test_empty_maps_and_a_geographic_current_map():
    empty = landslides()
    assert detect_changes(empty, empty, ChangeRules()).empty
    assert list(detect_changes(empty, landslides((0, 0, 5, 5)), ChangeRules())["change"]) == ["new"]
    with pytest.raises(ValueError, match="projected CRS"):
        detect_changes(empty, landslides((0, 0, 1, 1), crs="EPSG:4326"), ChangeRules())


def test_previous_survey_of_a_site_follows_dates_then_ids():
    from landslide_pipeline.mapping.changes import previous_survey

    surveys = [dict(survey_id="pit_c", site="pit", date="2025-06-01"),
               dict(survey_id="pit_a", site="pit", date="2024-06-01"),
               dict(survey_id="valley", site="valley", date="2025-01-01"),
               dict(survey_id="pit_z", site="pit", date=None),
               dict(survey_id="loose", site=None, date=None)]
    assert previous_survey(surveys, "pit_a") is None
    assert previous_survey(surveys, "pit_c") == "pit_a"
    assert previous_survey(surveys, "pit_z") == "pit_c"
    assert previous_survey(surveys, "valley") is None and previous_survey(surveys, "loose") is None
