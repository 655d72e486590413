"""Change detection between two surveys of one site, as the Dagster asset and its warning check."""

import json

import dagster as dg
import geopandas as gpd
import pytest
from shapely.geometry import box

from landslide_pipeline.defs.mapping_assets import landslide_change_alert, landslide_changes
from landslide_pipeline.defs.resources import DataStore
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.mapping import write_geopackage

UTM = "EPSG:32650"


def add_survey(layout: DataLayout, survey_id: str, site: str, date: str, boxes: list[tuple]) -> None:
    layout.survey_metadata(survey_id).parent.mkdir(parents=True, exist_ok=True)
    layout.survey_metadata(survey_id).write_text(json.dumps({"survey_id": survey_id, "site": site, "date": date}))
    layout.map(survey_id).mkdir(parents=True)
    polygons = gpd.GeoDataFrame({"area_m2": [0.0] * len(boxes)}, geometry=[box(*b) for b in boxes], crs=UTM)
    polygons["area_m2"] = polygons.area
    write_geopackage(polygons, layout.map(survey_id) / "landslides.gpkg")


@pytest.mark.parametrize("alert_area_m2, passed", [(1_000.0, True), (300.0, False)])
def test_changes_since_the_sites_previous_survey_and_the_warning(tmp_path, alert_area_m2, passed):
    layout = DataLayout(tmp_path)
    add_survey(layout, "pit_2024", "pit", "2024-06-01", [(0, 0, 10, 10), (100, 0, 110, 10)])
    add_survey(layout, "pit_2025", "pit", "2025-06-01", [(0, 0, 10, 10), (100, 0, 110, 30), (300, 0, 320, 10)])
    add_survey(layout, "valley_2025", "valley", "2025-06-01", [(0, 0, 50, 50)])
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("survey", ["pit_2024", "pit_2025", "valley_2025"])
    result = dg.materialize([landslide_changes, landslide_change_alert], partition_key="pit_2025", instance=instance,
                            resources={"data_store": DataStore(root=str(tmp_path))},
                            run_config={"ops": {"landslide_changes": {"config": {"alert_area_m2": alert_area_m2}}}})
    assert result.success
    summary = json.loads((layout.changes("pit_2025") / "summary.json").read_text())
    assert summary["previous"] == "pit_2024"  # not the other site's survey
    assert (summary["n_new"], summary["n_grown"], summary["n_stable"]) == (1, 1, 1)
    assert summary["flagged_area_m2"] == pytest.approx(200 + 200)  # a new 200 m2 slide, one grown by 200 m2
    changes = gpd.read_file(layout.changes("pit_2025") / "changes.gpkg", layer="changes")
    assert sorted(changes["change"]) == ["grown", "new", "stable"] and changes.crs == UTM
    [check] = result.get_asset_check_evaluations()
    assert check.passed is passed and check.severity == dg.AssetCheckSeverity.WARN


def test_the_first_survey_of_a_site_has_nothing_to_compare(tmp_path):
    layout = DataLayout(tmp_path)
    add_survey(layout, "pit_2024", "pit", "2024-06-01", [(0, 0, 10, 10)])
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("survey", ["pit_2024"])
    result = dg.materialize([landslide_changes, landslide_change_alert], partition_key="pit_2024", instance=instance,
                            resources={"data_store": DataStore(root=str(tmp_path))})
    assert result.success and result.get_asset_check_evaluations()[0].passed
    assert json.loads((layout.changes("pit_2024") / "summary.json").read_text())["previous"] is None
