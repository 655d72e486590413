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

Unknown keys, wrong types and wrong values are refused with a ``RuleError`` that names the file
and the key, e.g. ``rules.toml: [classes[2].conditions[0]].op: must be one of [...]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Self, cast

import numpy as np
import pandas as pd
from pydantic import AliasPath, Field, StrictFloat, StrictInt, StrictStr, field_validator, model_validator
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from skimage.filters import threshold_otsu

from landslide_pipeline.config_files import TomlTable, read_toml, validate
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.labelling.regions import RegionGraph
from landslide_pipeline.labelling.segmentation import SegmentationParams

UNCLASSIFIED = "unclassified"
OPERATORS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


class RuleError(ValueError):
    """A rule file that cannot be used; the message names the file and the entry."""


class Condition(TomlTable):
    """``feature op threshold``; the threshold is fixed, Otsu's or a sample quantile."""

    feature: StrictStr
    op: StrictStr
    value: StrictFloat | None = None
    otsu: tuple[StrictFloat, StrictFloat] | None = None
    quantile: Annotated[StrictFloat, Field(ge=0.0, le=1.0)] | None = None
    fallback: StrictFloat | None = None

    @field_validator("op")
    @classmethod
    def _known_operator(cls, op: str) -> str:
        if op not in OPERATORS:
            raise ValueError(f"must be one of {sorted(OPERATORS)}, got {op!r}")
        return op

    @model_validator(mode="after")
    def _one_threshold(self) -> Self:
        given = [key for key in ("value", "otsu", "quantile") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"needs exactly one of value, otsu, quantile (got {given or 'none'})")
        if self.otsu is not None and self.otsu[0] > self.otsu[1]:
            raise ValueError(f"otsu must be [lo, hi] with lo <= hi, got {list(self.otsu)}")
        if self.quantile is not None and self.fallback is None:
            raise ValueError("quantile must come with a fallback")
        return self

    @property
    def method(self) -> str:
        return "fixed" if self.value is not None else "otsu" if self.otsu is not None else "quantile"

    def describe(self) -> str:
        if self.value is not None:
            return f"{self.feature} {self.op} {self.value:g}"
        if self.otsu is not None:
            return f"{self.feature} {self.op} otsu in [{self.otsu[0]:g}, {self.otsu[1]:g}]"
        return f"{self.feature} {self.op} q{self.quantile:g} of samples (else {self.fallback:g})"


class ClassRule(TomlTable):
    """A class of the hierarchy (a ``[[classes]]`` table).

    Attributes:
        name: The class name, unique in the file.
        parent: The class it descends from, defined before it; None (or "") at the top.
        conditions: What an object must meet to enter the class.
    """

    name: Annotated[StrictStr, Field(min_length=1)]
    parent: StrictStr | None = None
    conditions: tuple[Condition, ...] = ()

    @field_validator("parent")
    @classmethod
    def _top_level_when_empty(cls, parent: str | None) -> str | None:
        return parent or None


class Grow(TomlTable):
    """Region growing of the landslide class into adjacent candidate objects (``[grow]``).

    Attributes:
        conditions: What a candidate must meet (thresholds over the non-landslide objects).
        border_ratio: Share of a candidate's outline that must touch landslide.
        rounds: Growing rounds (each can add the next ring of objects); 3 by default when there
            are conditions, else 0.
    """

    conditions: tuple[Condition, ...] = ()
    border_ratio: Annotated[StrictFloat, Field(gt=0.0, le=1.0)] = 0.25
    rounds: Annotated[StrictInt, Field(ge=0)] = 0

    @model_validator(mode="before")
    @classmethod
    def _three_rounds_with_conditions(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("conditions") and "rounds" not in data:
            return {**data, "rounds": 3}
        return data


class Cleanup(TomlTable):
    """Post-classification clean-up of the landslide objects (``[cleanup]``).

    Attributes:
        fill_max_area_m2: Non-landslide objects up to this area whose border is mostly landslide
            become landslide (darker or smoother patches inside a slide).
        fill_border_ratio: Share of an object's outline that must touch landslide to be filled.
        min_area_m2: Landslide regions (adjacent landslide objects) smaller than this are dropped.
    """

    fill_max_area_m2: StrictFloat = 0.0
    fill_border_ratio: StrictFloat = 0.75
    min_area_m2: StrictFloat = 0.0


class _Output(TomlTable):
    """The ``[output]`` table: the landslide classes, and the samples a quantile threshold needs."""

    landslide_classes: tuple[StrictStr, ...] = ("landslide",)
    min_samples: StrictInt = 5


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


class _RuleFile(TomlTable):
    """A rule file's top-level table; the module docstring describes the keys.

    ``classify_scale`` sits in ``[segmentation]`` but is no ``SegmentationParams`` field: it is read
    from there and left out of the parameters.
    """

    segmentation: SegmentationParams = Field(default_factory=SegmentationParams)
    classify_scale: StrictFloat | None = Field(None, validation_alias=AliasPath("segmentation", "classify_scale"))
    classes: tuple[ClassRule, ...] = ()
    output: _Output = Field(default_factory=_Output)
    grow: Grow = Field(default_factory=Grow)
    cleanup: Cleanup = Field(default_factory=Cleanup)

    @field_validator("segmentation", mode="before")
    @classmethod
    def _without_classify_scale(cls, table: Any) -> Any:
        return {k: v for k, v in table.items() if k != "classify_scale"} if isinstance(table, dict) else table

    @field_validator("classes")
    @classmethod
    def _parents_first(cls, classes: tuple[ClassRule, ...]) -> tuple[ClassRule, ...]:
        seen: set[str] = set()
        for rule in classes:
            if rule.name in seen or rule.name == UNCLASSIFIED:
                raise ValueError(f"class {rule.name!r} is defined twice or uses a reserved name")
            if rule.parent is not None and rule.parent not in seen:
                raise ValueError(f"class {rule.name!r}: parent {rule.parent!r} must be defined before it")
            seen.add(rule.name)
        return classes

    @model_validator(mode="after")
    def _known_scale_and_classes(self) -> Self:
        scales = self.segmentation.scales
        if self.classify_scale is not None and self.classify_scale not in scales:
            raise ValueError(f"[segmentation].classify_scale: {self.classify_scale:g} is not one of the scales {scales}")
        unknown = set(self.output.landslide_classes) - {c.name for c in self.classes}
        if unknown:
            raise ValueError(f"[output].landslide_classes: names undefined classes {sorted(unknown)}")
        return self

    def rule_set(self, source: str) -> RuleSet:
        """The rules; the classified scale defaults to the middle one."""
        scales = self.segmentation.scales
        scale = self.classify_scale if self.classify_scale is not None else scales[len(scales) // 2]
        return RuleSet(segmentation=self.segmentation, classify_scale=scale, classes=self.classes,
                       landslide_classes=self.output.landslide_classes, grow=self.grow, cleanup=self.cleanup,
                       min_samples=self.output.min_samples, source=source)


def load_rules(path: Path) -> RuleSet:
    """Reads and checks a rule file.

    Raises:
        RuleError: invalid TOML, unknown keys, wrong types, a class whose parent is not defined
            before it, duplicate class names, an unknown operator, not exactly one threshold per
            condition, or output classes that do not exist; the message names the file and the key.
    """
    path = Path(path)
    try:
        data = read_toml(path)
    except SurveyInputError as err:
        raise RuleError(str(err)) from err
    return parse_rules(data, str(path))


def parse_rules(data: dict[str, Any], source: str = "<memory>") -> RuleSet:
    """Builds a RuleSet from parsed TOML (see ``load_rules``)."""
    try:
        return validate(_RuleFile, data, source).rule_set(source)
    except SurveyInputError as err:
        raise RuleError(str(err)) from err


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
    quantile = cast(float, condition.quantile)  # neither fixed nor Otsu: Condition guarantees a quantile
    value = float(np.quantile(values[sampled], quantile))
    return value, {**record, "value": value, "n_objects": int(sampled.sum()), "note": f"q{quantile:g}"}


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
