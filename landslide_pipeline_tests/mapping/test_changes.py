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


def test_a_new_map_makes_its_own_and_its_successors_change_sets_stale():
    from landslide_pipeline.mapping.changes import affected_change_sets, next_survey

    surveys = [dict(survey_id="pit_2024", site="pit", date="2024-06-01"),
               dict(survey_id="pit_2026", site="pit", date="2026-06-01"),
               dict(survey_id="valley", site="valley", date="2025-01-01"),
               dict(survey_id="loose", site=None, date=None)]
    assert next_survey(surveys, "pit_2024") == "pit_2026" and next_survey(surveys, "pit_2026") is None
    assert affected_change_sets(surveys, ["pit_2026"]) == ["pit_2026"]
    # An earlier survey arriving late: its own change set, and its successor's (whose previous it becomes).
    late = [*surveys, dict(survey_id="pit_2025", site="pit", date="2025-06-01")]
    assert affected_change_sets(late, ["pit_2025"]) == ["pit_2025", "pit_2026"]
    assert affected_change_sets(late, ["loose", "valley"]) == ["loose", "valley"]


SITE_MAPS = {  # survey -> (date, landslide boxes): one landslide grows, one appears, one goes
    "pit_a": ("2024-06-01", [(0, 0, 10, 10), (100, 0, 110, 10)]),
    "pit_b": ("2025-06-01", [(0, 0, 10, 20), (100, 0, 110, 10), (300, 0, 320, 20)]),
    "pit_c": ("2026-06-01", [(0, 0, 10, 20), (300, 0, 320, 20)]),
}


@pytest.fixture
def site(tmp_path):
    """Three mapped surveys of one site on disk, as landslide_map leaves them."""
    import json

    from landslide_pipeline.layout import MAP_FACTS, MAP_POLYGONS, DataLayout
    from landslide_pipeline.mapping.vectorize import LANDSLIDES_LAYER, write_geopackage

    layout = DataLayout(tmp_path / "data")
    for survey_id, (date, boxes) in SITE_MAPS.items():
        layout.survey_metadata(survey_id).parent.mkdir(parents=True, exist_ok=True)
        layout.survey_metadata(survey_id).write_text(json.dumps({"survey_id": survey_id, "site": "pit", "date": date}))
        polygons = landslides(*boxes).assign(area_m2=lambda g: g.area)
        layout.map(survey_id).mkdir(parents=True)
        write_geopackage(polygons, layout.map(survey_id) / MAP_POLYGONS, layer=LANDSLIDES_LAYER)
        (layout.map(survey_id) / MAP_FACTS).write_text(json.dumps(
            {"n_landslides": len(boxes), "landslide_area_m2": float(polygons["area_m2"].sum())}))
    return layout


def arrive(layout, order: list[str]) -> dict[str, dict]:
    """The change sets after surveys arrive in ``order``, each map recomputing what it makes stale."""
    import json

    from landslide_pipeline.mapping.changes import affected_change_sets, survey_records, write_site_changes

    known: list[str] = []
    for survey_id in order:
        known.append(survey_id)
        for stale in affected_change_sets(survey_records(layout, known), [survey_id]):
            out = layout.changes(stale)
            out.mkdir(parents=True, exist_ok=True)
            write_site_changes(layout, stale, known, ChangeRules(min_growth_m2=20), out)
    return {s: json.loads((layout.changes(s) / "summary.json").read_text()) for s in known}


def test_out_of_order_arrivals_give_the_same_change_sets_as_in_order(site, tmp_path):
    import shutil

    in_order = arrive(site, ["pit_a", "pit_b", "pit_c"])
    shutil.rmtree(site.root / "changes")
    out_of_order = arrive(site, ["pit_c", "pit_a", "pit_b"])
    assert out_of_order == in_order
    assert in_order["pit_b"]["previous"] == "pit_a" and in_order["pit_c"]["previous"] == "pit_b"
    assert (in_order["pit_b"]["n_new"], in_order["pit_b"]["n_grown"]) == (1, 1)
    assert (in_order["pit_c"]["n_gone"], in_order["pit_c"]["n_stable"]) == (1, 2)


def test_the_site_history_follows_the_surveys_in_date_order(site, tmp_path):
    from landslide_pipeline.mapping.changes import site_history
    from landslide_pipeline.reports.plots import plot_site_history

    arrive(site, ["pit_b", "pit_c", "pit_a"])
    history = site_history(site, ["pit_c", "pit_a", "pit_b"], "pit")
    assert list(history["survey_id"]) == ["pit_a", "pit_b", "pit_c"]
    assert list(history["n_landslides"]) == [2, 3, 2]
    assert list(history["landslide_area_m2"]) == [200.0, 700.0, 600.0]
    assert history["n_new"].isna().iloc[0] and list(history["n_new"].iloc[1:]) == [1, 0]
    assert list(history["n_gone"].iloc[1:]) == [0, 1] and list(history["previous"].iloc[1:]) == ["pit_a", "pit_b"]
    path = plot_site_history(history, tmp_path / "history.png")
    assert path.stat().st_size > 5_000
