"""Landslide changes between two surveys of one site: new landslides and grown ones.

Each landslide polygon of the current map is matched with the previous map's polygons it
overlaps (by at least ``min_overlap_m2``, so that outlines that merely touch, or differ by
simplification, do not match). A current landslide with no match is **new**; one whose area
exceeds its matches' total by at least ``min_growth_m2`` *and* ``min_growth_fraction`` is
**grown**; any other match is **stable**. Previous landslides that no current one overlaps are
reported as **gone** (e.g. cleared debris), so the table accounts for every polygon of both maps.
Areas are computed in the current map's CRS, which must be projected (metres).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry.base import BaseGeometry

from landslide_pipeline.layout import (
    CHANGES_POLYGONS,
    CHANGES_SUMMARY,
    CHANGES_TABLE,
    MAP_FACTS,
    MAP_POLYGONS,
    DataLayout,
)
from landslide_pipeline.mapping.styles import changes_qml
from landslide_pipeline.mapping.vectorize import LANDSLIDES_LAYER, write_geopackage

Change = Literal["new", "grown", "stable", "gone"]


@dataclass(frozen=True)
class ChangeRules:
    """When a landslide counts as grown, and when new or grown area warrants a warning."""

    min_growth_m2: float = 50.0
    min_growth_fraction: float = 0.2
    min_overlap_m2: float = 1.0
    alert_area_m2: float = 500.0  # new + grown area above this raises the change check's warning


def detect_changes(previous: gpd.GeoDataFrame, current: gpd.GeoDataFrame, rules: ChangeRules) -> gpd.GeoDataFrame:
    """One row per landslide of either map: its change, areas and the matched polygons.

    Args:
        previous: Landslide polygons of the earlier survey (any CRS; reprojected).
        current: Landslide polygons of the later survey, in a projected CRS.
        rules: Growth and overlap thresholds.

    Returns:
        A GeoDataFrame in the current CRS with ``change``, ``area_m2``, ``previous_area_m2``,
        ``growth_m2``, ``growth_fraction``, ``current_id`` and ``previous_ids`` (comma-separated
        row numbers of the matched previous polygons); geometry is the current polygon (the previous
        one for "gone").

    Raises:
        ValueError: the current map has no CRS or a geographic one.
    """
    if current.crs is None or not current.crs.is_projected:
        raise ValueError(f"change detection needs a projected CRS in metres, got {current.crs}")
    previous = previous.to_crs(current.crs) if previous.crs is not None else previous.set_crs(current.crs)
    previous = previous.reset_index(drop=True)
    current = current.reset_index(drop=True)
    pairs = _overlaps(previous, current, rules.min_overlap_m2)
    rows = [_current_row(i, geometry, pairs, previous, rules) for i, geometry in enumerate(current.geometry)]
    matched = set(pairs["previous"])
    rows += [{"change": "gone", "area_m2": 0.0, "previous_area_m2": float(geometry.area), "growth_m2": -float(geometry.area),
              "growth_fraction": -1.0, "current_id": -1, "previous_ids": str(j), "geometry": geometry}
             for j, geometry in enumerate(previous.geometry) if j not in matched]
    columns = ["change", "area_m2", "previous_area_m2", "growth_m2", "growth_fraction", "current_id", "previous_ids"]
    table = pd.DataFrame(rows, columns=[*columns, "geometry"])
    return gpd.GeoDataFrame(table, geometry="geometry", crs=current.crs)


def _overlaps(previous: gpd.GeoDataFrame, current: gpd.GeoDataFrame, min_overlap_m2: float) -> pd.DataFrame:
    """Pairs (current, previous) of polygons that share at least ``min_overlap_m2``."""
    if previous.empty or current.empty:
        return pd.DataFrame({"current": np.array([], int), "previous": np.array([], int)})
    cur_idx, prev_idx = previous.sindex.query(current.geometry, predicate="intersects")
    overlap = current.geometry.values[cur_idx].intersection(previous.geometry.values[prev_idx]).area
    keep = overlap >= min_overlap_m2
    return pd.DataFrame({"current": cur_idx[keep], "previous": prev_idx[keep]})


def _current_row(i: int, geometry: BaseGeometry, pairs: pd.DataFrame, previous: gpd.GeoDataFrame, rules: ChangeRules) -> dict:
    matches = pairs.loc[pairs["current"] == i, "previous"].to_numpy()
    area = float(geometry.area)
    before = float(previous.geometry.values[matches].area.sum()) if len(matches) else 0.0
    growth = area - before
    fraction = growth / before if before else float("inf")
    if not len(matches):
        change: Change = "new"
    elif growth >= rules.min_growth_m2 and fraction >= rules.min_growth_fraction:
        change = "grown"
    else:
        change = "stable"
    return {"change": change, "area_m2": area, "previous_area_m2": before, "growth_m2": growth,
            "growth_fraction": fraction, "current_id": i, "previous_ids": ",".join(map(str, sorted(matches))),
            "geometry": geometry}


def change_summary(changes: gpd.GeoDataFrame, rules: ChangeRules) -> dict[str, float | int | bool]:
    """Counts and areas per change, and whether new + grown area exceeds the alert limit."""
    new = changes[changes["change"] == "new"]
    grown = changes[changes["change"] == "grown"]
    flagged = float(new["area_m2"].sum() + grown["growth_m2"].sum())
    return {
        "n_new": len(new), "n_grown": len(grown), "n_stable": int((changes["change"] == "stable").sum()),
        "n_gone": int((changes["change"] == "gone").sum()), "new_area_m2": float(new["area_m2"].sum()),
        "grown_area_m2": float(grown["growth_m2"].sum()), "flagged_area_m2": flagged,
        "alert": flagged > rules.alert_area_m2,
    }


def site_order(surveys: list[dict], site: str) -> list[str]:
    """A site's survey ids in time order: by date, then by id; surveys without a date sort by id
    after dated ones, so name undated surveys in time order (e.g. ``pit_2024_06``).

    Args:
        surveys: Survey metadata records (``survey_id``, ``site``, ``date``: ISO or None).
        site: The site.
    """
    ordered = sorted((s for s in surveys if s.get("site") == site),
                     key=lambda s: (s.get("date") is None, s.get("date") or "", s["survey_id"]))
    return [s["survey_id"] for s in ordered]


def _neighbour(surveys: list[dict], survey_id: str, step: int) -> str | None:
    site = next(s for s in surveys if s["survey_id"] == survey_id).get("site")
    if site is None:
        return None
    order = site_order(surveys, site)
    position = order.index(survey_id) + step
    return order[position] if 0 <= position < len(order) else None


def previous_survey(surveys: list[dict], survey_id: str) -> str | None:
    """The survey of the same site just before ``survey_id`` (``site_order``), or None (no site,
    or the first)."""
    return _neighbour(surveys, survey_id, -1)


def next_survey(surveys: list[dict], survey_id: str) -> str | None:
    """The survey of the same site just after ``survey_id``, or None (no site, or the last)."""
    return _neighbour(surveys, survey_id, +1)


def affected_change_sets(surveys: list[dict], mapped: Iterable[str]) -> list[str]:
    """The change sets a new map of each ``mapped`` survey makes stale: its own (against its
    previous survey) and its site's next survey's (whose previous it is, or has just become when
    it arrived out of date order). Every other change set compares two maps that did not change.

    Args:
        surveys: Survey metadata records of every known survey.
        mapped: Surveys whose map has just been (re)made.
    """
    affected = set()
    for survey_id in mapped:
        affected.add(survey_id)
        if (following := next_survey(surveys, survey_id)) is not None:
            affected.add(following)
    return sorted(affected)


def survey_records(layout: DataLayout, survey_ids: Iterable[str]) -> list[dict]:
    """The metadata records (``data/surveys/<id>.json``) of the surveys that have been ingested."""
    return [json.loads(p.read_text()) for p in map(layout.survey_metadata, survey_ids) if p.is_file()]


def site_history(layout: DataLayout, survey_ids: Iterable[str], site: str) -> pd.DataFrame:
    """A site's landslides survey by survey, in time order: landslide count and area of each map,
    and new, grown, stable and gone landslides (and the new and grown area) against the survey
    before. Surveys not mapped yet are left out; the first survey has no changes (NaN).
    """
    records = survey_records(layout, survey_ids)
    dates = {r["survey_id"]: r.get("date") for r in records}
    rows = []
    for survey_id in site_order(records, site):
        facts_path = layout.map(survey_id) / MAP_FACTS
        if not facts_path.is_file():
            continue
        facts = json.loads(facts_path.read_text())
        summary_path = layout.changes(survey_id) / CHANGES_SUMMARY
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        rows.append({"site": site, "survey_id": survey_id, "date": dates.get(survey_id),
                     "n_landslides": facts["n_landslides"], "landslide_area_m2": facts["landslide_area_m2"],
                     "previous": summary.get("previous"),
                     **{k: summary.get(k, np.nan) for k in ("n_new", "n_grown", "n_stable", "n_gone", "new_area_m2",
                                                            "grown_area_m2")},
                     "alert": bool(summary.get("alert", False))})
    return pd.DataFrame(rows)


def write_site_changes(layout: DataLayout, survey_id: str, survey_ids: Iterable[str], rules: ChangeRules,
                       out_dir: Path) -> dict[str, Any]:
    """Compares a survey's map with its site's previous survey's and writes the changes.

    Writes ``changes.gpkg`` (layer ``changes``) and ``changes.parquet`` when there is a previous
    survey, and ``summary.json`` always (``previous`` is None when there is nothing to compare).

    Args:
        layout: The data folder (survey metadata and maps are read from it).
        survey_id: The later survey.
        survey_ids: Every survey, to find the previous one of the same site among.
        rules: Growth and alert rules.
        out_dir: Where to write.

    Returns:
        The summary.

    Raises:
        FileNotFoundError: the previous survey has no map yet.
    """
    records = survey_records(layout, survey_ids)
    previous = previous_survey(records, survey_id) if any(r["survey_id"] == survey_id for r in records) else None
    current_map = layout.map(survey_id) / MAP_POLYGONS
    summary: dict[str, Any] = {"previous": None, "alert": False, "alert_area_m2": rules.alert_area_m2,
                               "note": "no earlier survey of this site, or no map"}
    if previous is not None and current_map.is_file():
        previous_map = layout.map(previous) / MAP_POLYGONS
        if not previous_map.is_file():
            raise FileNotFoundError(f"{previous_map}: materialize landslide_map for {previous} first")
        changes = detect_changes(gpd.read_file(previous_map, layer=LANDSLIDES_LAYER),
                                 gpd.read_file(current_map, layer=LANDSLIDES_LAYER), rules)
        write_geopackage(changes, out_dir / CHANGES_POLYGONS, layer="changes", style=changes_qml())
        changes.to_parquet(out_dir / CHANGES_TABLE, index=False)
        summary = {"previous": previous, **change_summary(changes, rules), "alert_area_m2": rules.alert_area_m2}
    (out_dir / CHANGES_SUMMARY).write_text(json.dumps(summary, indent=2))
    return summary
