"""What the automation requests when surveys change: the partitions of each scenario.

Usage: ``python bench/automation.py [--work /tmp/landslide-automation]``

Two small synthetic surveys (``pit_a``, ``pit_b``) are prepared on an ephemeral instance, then:

- ``identical_reingest``: ``pit_a``'s files are ingested again, unchanged;
- ``label_edit``: one landslide polygon of ``pit_a`` is removed and the survey re-ingested; the
  requests of that tick, then (after they ran) those of the next retraining window;
- ``code_bump``: ``survey_tiles`` gets a new code version;
- ``out_of_order_equal``: three mapped surveys of one site arrive in date order and out of it;
  each map recomputes the change sets it makes stale (``mapping.changes.affected_change_sets``)
  and the final change sets are compared.

The last line is JSON: ``{"label_edit": [...], "identical_reingest": [...], "code_bump": [...],
"out_of_order_equal": true}`` (requested partitions as ``asset[partition]``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import dagster as dg
import geopandas as gpd
from shapely.geometry import box

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.runner import prepare_surveys, run_assets
from landslide_pipeline.layout import MAP_FACTS, MAP_POLYGONS, DataLayout
from landslide_pipeline.mapping.changes import ChangeRules, affected_change_sets, survey_records, write_site_changes
from landslide_pipeline.mapping.vectorize import LANDSLIDES_LAYER, write_geopackage
from landslide_pipeline.settings import PipelineSettings, StorageSettings
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey

TILES = {"survey_tiles": {"tile_size": 64}}
NIGHT = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)  # an hour before the default retraining window


def requests(result: dg.EvaluateAutomationConditionsResult, defs: dg.Definitions) -> list[str]:
    """Every requested asset partition, as ``asset[partition]`` (``asset`` when unpartitioned)."""
    out = []
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        for partition in sorted(result.get_requested_partitions(key), key=str):
            out.append(key.to_user_string() + (f"[{partition}]" if partition else ""))
    return sorted(out)


def run(defs: dg.Definitions, instance: dg.DagsterInstance, assets: list[str], partition: str, config: dict) -> None:
    assert run_assets(defs, instance, assets, config, partition).success


def survey_scenarios(work: Path) -> dict[str, list[str]]:
    layout = DataLayout(work / "data")
    for seed, survey_id in enumerate(("pit_a", "pit_b")):
        generate_survey(layout.raw_survey(survey_id), SyntheticSurveySpec(size_px=256, n_landslides=3, seed=seed))
    defs = build_definitions(PipelineSettings(), StorageSettings(str(layout.root), f"sqlite:///{work}/mlflow.db",
                                                                 str(work / "artifacts")))
    instance = dg.DagsterInstance.ephemeral()
    assert all(r.success for r in prepare_surveys(defs, instance, ["pit_a", "pit_b"], TILES))
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=NIGHT)
    run(defs, instance, ["raw_survey"], "pit_a", {})
    reingest = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor,
                                                 evaluation_time=NIGHT + dt.timedelta(minutes=1))
    labels = layout.raw_survey("pit_a") / "landslides.gpkg"
    gpd.read_file(labels).iloc[:-1].to_file(labels, driver="GPKG")
    run(defs, instance, ["raw_survey"], "pit_a", {})
    edit = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=reingest.cursor,
                                             evaluation_time=NIGHT + dt.timedelta(minutes=2))
    run(defs, instance, ["survey_tiles", "manual_labels", "label_agreement"], "pit_a", TILES)
    window = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=edit.cursor,
                                               evaluation_time=NIGHT + dt.timedelta(hours=1, minutes=1))
    bumped = defs.map_resolved_asset_specs(func=lambda spec: spec.replace_attributes(code_version="bumped"),
                                           selection=dg.AssetSelection.assets("survey_tiles"))
    bump = dg.evaluate_automation_conditions(defs=bumped, instance=instance, cursor=window.cursor,
                                             evaluation_time=NIGHT + dt.timedelta(hours=1, minutes=2))
    return {"identical_reingest": requests(reingest, defs), "label_edit": requests(edit, defs) + requests(window, defs),
            "code_bump": requests(bump, defs)}


def out_of_order_equal(work: Path) -> bool:
    """Three mapped surveys of one site arriving in date order and out of it give the same change sets."""
    layout = DataLayout(work / "site")
    maps = {"s1": ("2024-06-01", [(0, 0, 10, 10), (100, 0, 110, 10)]),
            "s2": ("2025-06-01", [(0, 0, 10, 20), (100, 0, 110, 10), (300, 0, 320, 20)]),
            "s3": ("2026-06-01", [(0, 0, 10, 20), (300, 0, 320, 20)])}
    for survey_id, (date, boxes) in maps.items():
        layout.survey_metadata(survey_id).parent.mkdir(parents=True, exist_ok=True)
        layout.survey_metadata(survey_id).write_text(json.dumps({"survey_id": survey_id, "site": "pit", "date": date}))
        polygons = gpd.GeoDataFrame(geometry=[box(*b) for b in boxes], crs="EPSG:32650").assign(area_m2=lambda g: g.area)
        layout.map(survey_id).mkdir(parents=True)
        write_geopackage(polygons, layout.map(survey_id) / MAP_POLYGONS, layer=LANDSLIDES_LAYER)
        (layout.map(survey_id) / MAP_FACTS).write_text("{}")
    results = []
    for order in (["s1", "s2", "s3"], ["s3", "s1", "s2"]):
        shutil.rmtree(layout.root / "changes", ignore_errors=True)
        known: list[str] = []
        for survey_id in order:
            known.append(survey_id)
            for stale in affected_change_sets(survey_records(layout, known), [survey_id]):
                layout.changes(stale).mkdir(parents=True, exist_ok=True)
                write_site_changes(layout, stale, known, ChangeRules(), layout.changes(stale))
        results.append({s: json.loads((layout.changes(s) / "summary.json").read_text()) for s in maps})
        print(f"arrival order {order}: " + ", ".join(f"{s} vs {r['previous']}" for s, r in results[-1].items()))
    return results[0] == results[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/landslide-automation"))
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    figures = survey_scenarios(args.work)
    for scenario, requested in figures.items():
        print(f"{scenario}: {len(requested)} requested: {', '.join(requested) or 'nothing'}")
    equal = out_of_order_equal(args.work)
    print(json.dumps({"label_edit": figures["label_edit"], "identical_reingest": figures["identical_reingest"],
                      "code_bump": figures["code_bump"], "out_of_order_equal": equal}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
