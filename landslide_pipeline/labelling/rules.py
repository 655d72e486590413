"""Hierarchical classification of objects by multi-condition thresholds, read from a TOML file.

The rule file (``configs/obia_rules.toml`` ships the defaults) holds:

- ``[segmentation]``: the ``SegmentationParams`` and ``classify_scale``, the scale whose objects
  are classified;
- ``[[classes]]``: a class hierarchy. Each class names its ``parent`` (none: a top-level class)
  and a list of ``conditions``, all of which must hold. An object descends from a class into the
  first of its children, in file order, whose conditions it meets, and stays where no child
  takes it; objects that no top-level class takes stay ``unclassified``;
- ``[output]``: which classes are landslides;
- ``[grow]``: region growing after classification (eCognition's "grow region"): an object whose
  outline touches landslide for at least ``border_ratio`` and that meets the grow ``conditions``
  (looser than the class's) joins the landslide, for up to ``rounds`` rounds;
- ``[cleanup]``: then adjacent landslide objects form regions; objects mostly enclosed by
  landslide are filled in and regions smaller than a minimum area are dropped.

A condition is ``{ feature = "glcm_contrast", op = ">", ... }`` with exactly one threshold:

- ``value = 1.5``: fixed;
- ``otsu = [lo, hi]``: Otsu's threshold of the feature over the objects that reach the class
  (those of the parent not taken by an earlier sibling), weighted by their area and clamped to
  ``[lo, hi]`` so that a scene without, say, vegetation cannot move it far;
- ``quantile = 0.05, fallback = 1.5``: that quantile of the feature over the labelled landslide
  samples that reach the class (objects at least half inside reference labels), or
  ``fallback`` with fewer than ``min_samples`` of them.

Every threshold used is logged with how it was found. A feature without any value (terrain
without a DEM) skips its conditions, which is logged too; an object whose own value is missing
fails the condition.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from skimage.filters import threshold_otsu

from landslide_pipeline.labelling.regions import RegionGraph
from landslide_pipeline.labelling.segmentation import SegmentationParams

UNCLASSIFIED = "unclassified"
OPERATORS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
_SEGMENTATION_KEYS = {"scales", "shape", "compactness", "weights", "superpixel_px", "superpixel_compactness",
                      "superpixel_iterations", "window_px", "texture_levels"}


class RuleError(ValueError):
    """A rule file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Condition:
    """``feature op threshold``; the threshold is fixed, Otsu's or a sample quantile."""

    feature: str
    op: str
    value: float | None = None
    otsu: tuple[float, float] | None = None
    quantile: float | None = None
    fallback: float | None = None

    @property
    def method(self) -> str:
        return "fixed" if self.value is not None else "otsu" if self.otsu is not None else "quantile"

    def describe(self) -> str:
        if self.value is not None:
            return f"{self.feature} {self.op} {self.value:g}"
        if self.otsu is not None:
            return f"{self.feature} {self.op} otsu in [{self.otsu[0]:g}, {self.otsu[1]:g}]"
        return f"{self.feature} {self.op} q{self.quantile:g} of samples (else {self.fallback:g})"


@dataclass(frozen=True)
class ClassRule:
    """A class of the hierarchy: its parent (None at the top) and the conditions to enter it."""

    name: str
    parent: str | None
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Grow:
    """Region growing of the landslide class into adjacent candidate objects.

    Attributes:
        conditions: What a candidate must meet (thresholds over the non-landslide objects).
        border_ratio: Share of a candidate's outline that must touch landslide.
        rounds: Growing rounds (each can add the next ring of objects).
    """

    conditions: tuple[Condition, ...] = ()
    border_ratio: float = 0.25
    rounds: int = 0


@dataclass(frozen=True)
class Cleanup:
    """Post-classification clean-up of the landslide objects.

    Attributes:
        fill_max_area_m2: Non-landslide objects up to this area whose border is mostly landslide
            become landslide (darker or smoother patches inside a slide).
        fill_border_ratio: Share of an object's outline that must touch landslide to be filled.
        min_area_m2: Landslide regions (adjacent landslide objects) smaller than this are dropped.
    """

    fill_max_area_m2: float = 0.0
    fill_border_ratio: float = 0.75
    min_area_m2: float = 0.0


@dataclass(frozen=True)
class RuleSet:
    """A rule file: segmentation, classified scale, class hierarchy, output and clean-up."""

    segmentation: SegmentationParams
    classify_scale: float
    classes: tuple[ClassRule, ...]
    landslide_classes: tuple[str, ...]
    grow: Grow = field(default_factory=Grow)
    cleanup: Cleanup = field(default_factory=Cleanup)
    min_samples: int = 5
    source: str = "<memory>"

    @property
    def level(self) -> int:
        """Index of the classified scale among the segmentation's scales."""
        return self.segmentation.scales.index(self.classify_scale)

    def conditions(self) -> list[Condition]:
        return [c for rule in self.classes for c in rule.conditions] + list(self.grow.conditions)

    def features_used(self) -> set[str]:
        return {c.feature for c in self.conditions()}

    def needs_samples(self) -> bool:
        return any(c.quantile is not None for c in self.conditions())


def load_rules(path: Path) -> RuleSet:
    """Reads and checks a rule file.

    Raises:
        RuleError: invalid TOML, unknown keys, a class whose parent is not defined before it,
            duplicate class names, an unknown operator, not exactly one threshold per condition,
            or output classes that do not exist.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RuleError(f"{path}: invalid TOML ({err})") from err
    return parse_rules(data, str(path))


def parse_rules(data: dict[str, Any], source: str = "<memory>") -> RuleSet:
    """Builds a RuleSet from parsed TOML (see ``load_rules``)."""
    _only(data, {"segmentation", "classes", "output", "grow", "cleanup"}, source, "")
    segmentation, scale = _segmentation(dict(data.get("segmentation", {})), source)
    classes = tuple(_class(entry, i, source) for i, entry in enumerate(data.get("classes", [])))
    _check_hierarchy(classes, source)
    output = dict(data.get("output", {}))
    _only(output, {"landslide_classes", "min_samples"}, source, "output.")
    landslide = tuple(output.get("landslide_classes", ["landslide"]))
    unknown = set(landslide) - {c.name for c in classes}
    if unknown:
        raise RuleError(f"{source}: output.landslide_classes names undefined classes {sorted(unknown)}")
    cleanup = dict(data.get("cleanup", {}))
    _only(cleanup, {"fill_max_area_m2", "fill_border_ratio", "min_area_m2"}, source, "cleanup.")
    return RuleSet(segmentation=segmentation, classify_scale=scale, classes=classes, landslide_classes=landslide,
                   grow=_grow(dict(data.get("grow", {})), source),
                   cleanup=Cleanup(**{k: float(v) for k, v in cleanup.items()}),
                   min_samples=int(output.get("min_samples", 5)), source=source)


def _grow(table: dict[str, Any], source: str) -> Grow:
    _only(table, {"conditions", "border_ratio", "rounds"}, source, "grow.")
    conditions = tuple(_condition(c, f"grow.conditions[{k}].", source)
                       for k, c in enumerate(table.get("conditions", [])))
    rounds = int(table.get("rounds", 3 if conditions else 0))
    ratio = float(table.get("border_ratio", 0.25))
    if rounds < 0 or not 0.0 < ratio <= 1.0:
        raise RuleError(f"{source}: grow.rounds must be >= 0 and grow.border_ratio within (0, 1]")
    return Grow(conditions=conditions, border_ratio=ratio, rounds=rounds)


def _only(table: dict, allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RuleError(f"{source}: unknown key(s) {', '.join(where + k for k in unknown)}")


def _segmentation(table: dict[str, Any], source: str) -> tuple[SegmentationParams, float]:
    scale = table.pop("classify_scale", None)
    _only(table, _SEGMENTATION_KEYS, source, "segmentation.")
    if "scales" in table:
        table["scales"] = tuple(float(s) for s in table["scales"])
    try:
        params = SegmentationParams(**table)
    except (TypeError, ValueError) as err:
        raise RuleError(f"{source}: segmentation: {err}") from err
    scale = float(scale) if scale is not None else params.scales[len(params.scales) // 2]
    if scale not in params.scales:
        raise RuleError(f"{source}: segmentation.classify_scale {scale:g} is not one of the scales {params.scales}")
    return params, scale


def _class(entry: dict[str, Any], index: int, source: str) -> ClassRule:
    where = f"classes[{index}]."
    _only(entry, {"name", "parent", "conditions"}, source, where)
    if not isinstance(entry.get("name"), str) or not entry["name"]:
        raise RuleError(f"{source}: {where}name is required")
    conditions = tuple(_condition(c, f"{where}conditions[{k}].", source) for k, c in
                       enumerate(entry.get("conditions", [])))
    return ClassRule(name=entry["name"], parent=entry.get("parent") or None, conditions=conditions)


def _condition(entry: dict[str, Any], where: str, source: str) -> Condition:
    _only(entry, {"feature", "op", "value", "otsu", "quantile", "fallback"}, source, where)
    if entry.get("op") not in OPERATORS:
        raise RuleError(f"{source}: {where}op must be one of {sorted(OPERATORS)}, got {entry.get('op')!r}")
    if not isinstance(entry.get("feature"), str):
        raise RuleError(f"{source}: {where}feature is required")
    given = [k for k in ("value", "otsu", "quantile") if k in entry]
    if len(given) != 1:
        raise RuleError(f"{source}: {where}needs exactly one of value, otsu, quantile (got {given or 'none'})")
    otsu = entry.get("otsu")
    if otsu is not None and (len(otsu) != 2 or otsu[0] > otsu[1]):
        raise RuleError(f"{source}: {where}otsu must be [lo, hi] with lo <= hi, got {otsu}")
    quantile = entry.get("quantile")
    if quantile is not None and (not 0.0 <= quantile <= 1.0 or "fallback" not in entry):
        raise RuleError(f"{source}: {where}quantile must be within 0..1 and come with a fallback")
    return Condition(feature=entry["feature"], op=entry["op"],
                     value=float(entry["value"]) if "value" in entry else None,
                     otsu=(float(otsu[0]), float(otsu[1])) if otsu is not None else None,
                     quantile=float(quantile) if quantile is not None else None,
                     fallback=float(entry["fallback"]) if "fallback" in entry else None)


def _check_hierarchy(classes: tuple[ClassRule, ...], source: str) -> None:
    seen: set[str] = set()
    for rule in classes:
        if rule.name in seen or rule.name == UNCLASSIFIED:
            raise RuleError(f"{source}: class {rule.name!r} is defined twice or uses a reserved name")
        if rule.parent is not None and rule.parent not in seen:
            raise RuleError(f"{source}: class {rule.name!r}: parent {rule.parent!r} must be defined before it")
        seen.add(rule.name)


@dataclass(frozen=True)
class Classification:
    """Classes of the objects and the thresholds that decided them.

    Attributes:
        classes: (n,) class name of every object.
        landslide: (n,) whether each object is landslide after the clean-up.
        thresholds: One record per condition evaluated: class, feature, op, method, value,
            objects it was derived from, and a note.
        cleanup: What growing and the clean-up changed (objects grown and filled, regions and
            objects dropped, regions left).
    """

    classes: np.ndarray
    landslide: np.ndarray
    thresholds: list[dict[str, Any]]
    cleanup: dict[str, float]


def classify(features: pd.DataFrame, rules: RuleSet, graph: RegionGraph,
             samples: np.ndarray | None = None) -> Classification:
    """Classifies every object (row of ``features``) down the hierarchy, then cleans up.

    Args:
        features: One row per object of ``graph`` (``features.object_features``).
        rules: The rule set.
        graph: The classified objects' adjacency (for the clean-up).
        samples: Per object, the share of its pixels inside reference landslide labels (NaN
            where unknown), for quantile thresholds; None without reference labels.

    Raises:
        RuleError: a condition names a feature the table does not have.
    """
    missing = sorted(rules.features_used() - set(features.columns))
    if missing:
        raise RuleError(f"{rules.source}: unknown feature(s) {missing}; available: {sorted(features.columns)}")
    classes = np.full(len(features), UNCLASSIFIED, dtype=object)
    area = features["area_m2"].to_numpy(dtype=np.float64)
    is_sample = np.zeros(len(features), dtype=bool) if samples is None else np.nan_to_num(samples) >= 0.5
    log: list[dict[str, Any]] = []
    _descend(None, np.ones(len(features), dtype=bool), features, rules, area, is_sample, classes, log)
    landslide = np.isin(classes, rules.landslide_classes)
    grown = grow(landslide, features, area, graph, rules.grow, is_sample, rules.min_samples, log)
    cleaned, summary = clean_up(grown, area, graph, rules.cleanup)
    summary = {"grown_objects": int((grown & ~landslide).sum()), **summary}
    return Classification(classes=classes.astype(str), landslide=cleaned, thresholds=log, cleanup=summary)


def _descend(parent: str | None, members: np.ndarray, features: pd.DataFrame, rules: RuleSet, area: np.ndarray,
             is_sample: np.ndarray, classes: np.ndarray, log: list[dict[str, Any]]) -> None:
    remaining = members.copy()
    for rule in (r for r in rules.classes if r.parent == parent):
        taken = remaining.copy()
        for condition in rule.conditions:
            values = features[condition.feature].to_numpy(dtype=np.float64)
            threshold, record = _threshold(condition, values, remaining, area, is_sample, rules.min_samples)
            log.append({"class": rule.name, **record})
            if threshold is not None:
                with np.errstate(invalid="ignore"):
                    taken &= OPERATORS[condition.op](values, threshold)
        classes[taken] = rule.name
        _descend(rule.name, taken, features, rules, area, is_sample, classes, log)
        remaining &= ~taken


def _threshold(condition: Condition, values: np.ndarray, population: np.ndarray, area: np.ndarray,
               is_sample: np.ndarray, min_samples: int) -> tuple[float | None, dict[str, Any]]:
    """The threshold of a condition over a population of objects, and its log record."""
    record = {"feature": condition.feature, "op": condition.op, "method": condition.method, "value": None,
              "n_objects": int(population.sum()), "note": ""}
    if np.isnan(values).all():
        return None, {**record, "note": "skipped: the feature has no value (no DEM?)"}
    if condition.value is not None:
        return condition.value, {**record, "value": condition.value}
    if condition.otsu is not None:
        known = population & np.isfinite(values)
        value, note = _otsu(values[known], area[known], condition.otsu)
        return value, {**record, "value": value, "n_objects": int(known.sum()), "note": note}
    sampled = population & is_sample & np.isfinite(values)
    if sampled.sum() < min_samples:
        return condition.fallback, {**record, "value": condition.fallback, "n_objects": int(sampled.sum()),
                                    "note": f"fallback: {int(sampled.sum())} < {min_samples} samples"}
    value = float(np.quantile(values[sampled], condition.quantile))
    return value, {**record, "value": value, "n_objects": int(sampled.sum()), "note": f"q{condition.quantile:g}"}


def _otsu(values: np.ndarray, weights: np.ndarray, bounds: tuple[float, float]) -> tuple[float, str]:
    """Area-weighted Otsu threshold, clamped to ``bounds``; the lower bound with too few values."""
    lo, hi = bounds
    if len(values) < 2 or np.ptp(values) == 0:
        return lo, "too few distinct values: lower bound"
    counts, edges = np.histogram(values, bins=256, weights=weights)
    raw = float(threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2)))
    value = float(np.clip(raw, lo, hi))
    return value, "otsu" if value == raw else f"otsu {raw:.4g} clamped"


def grow(landslide: np.ndarray, features: pd.DataFrame, area: np.ndarray, graph: RegionGraph, rule: Grow,
         is_sample: np.ndarray, min_samples: int, log: list[dict[str, Any]]) -> np.ndarray:
    """Landslide grown into adjacent objects that meet the grow conditions (see ``Grow``).

    Thresholds are derived once, over the objects that are not landslide before growing.
    """
    if rule.rounds == 0:
        return landslide
    candidates = ~landslide
    for condition in rule.conditions:
        values = features[condition.feature].to_numpy(dtype=np.float64)
        threshold, record = _threshold(condition, values, ~landslide, area, is_sample, min_samples)
        log.append({"class": "grow", **record})
        if threshold is not None:
            with np.errstate(invalid="ignore"):
                candidates &= OPERATORS[condition.op](values, threshold)
    landslide = landslide.copy()
    for _ in range(rule.rounds):
        joining = candidates & ~landslide & (_border_share(landslide, graph) >= rule.border_ratio)
        if not joining.any():
            break
        landslide |= joining
    return landslide


def _border_share(selected: np.ndarray, graph: RegionGraph) -> np.ndarray:
    """Share of each object's outline that touches selected objects."""
    a, b = graph.edges[:, 0], graph.edges[:, 1]
    n = graph.n_regions
    touching = np.bincount(a, graph.shared * selected[b], n) + np.bincount(b, graph.shared * selected[a], n)
    return touching / np.maximum(graph.perimeter, 1.0)


def clean_up(landslide: np.ndarray, area: np.ndarray, graph: RegionGraph,
             cleanup: Cleanup) -> tuple[np.ndarray, dict[str, float]]:
    """Fills enclosed patches into landslides, then drops landslide regions below the minimum area.

    Args:
        landslide: (n,) landslide objects.
        area: (n,) object areas (m2).
        graph: The objects' adjacency and outlines.
        cleanup: Thresholds.

    Returns:
        (the cleaned landslide objects, counts of what changed).
    """
    enclosed = _border_share(landslide, graph) >= cleanup.fill_border_ratio
    fill = ~landslide & (area <= cleanup.fill_max_area_m2) & enclosed
    landslide = landslide | fill
    a, b = graph.edges[:, 0], graph.edges[:, 1]
    n = graph.n_regions
    inside = landslide[a] & landslide[b]
    links = sparse.coo_matrix((np.ones(int(inside.sum())), (a[inside], b[inside])), shape=(n, n))
    _, region = connected_components(links, directed=False)
    region_area = np.bincount(region, area * landslide, n)
    small = landslide & (region_area[region] < cleanup.min_area_m2)
    landslide &= ~small
    return landslide, {"filled_objects": int(fill.sum()), "dropped_objects": int(small.sum()),
                       "dropped_regions": int(len(np.unique(region[small]))),
                       "landslide_regions": int(len(np.unique(region[landslide])))}
