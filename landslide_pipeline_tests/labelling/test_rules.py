from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from landslide_pipeline.labelling.rules import (
    UNCLASSIFIED,
    Cleanup,
    RuleError,
    classify,
    clean_up,
    load_rules,
    parse_rules,
)

SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "obia_rules.toml"


def chain_graph(n: int) -> SimpleNamespace:
    """Objects 0..n-1 in a row, each sharing a 4 px border with the next, outlines of 16 px."""
    edges = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    return SimpleNamespace(n_regions=n, edges=edges, shared=np.full(n - 1, 4.0), perimeter=np.full(n, 16.0))


def rules_with(classes: list[dict], **extra) -> dict:
    return {"segmentation": {"scales": [10, 20], "classify_scale": 10}, "classes": classes,
            "output": {"landslide_classes": ["landslide"]}, **extra}


HIERARCHY = [
    {"name": "vegetation", "conditions": [{"feature": "exg", "op": ">", "value": 0.1}]},
    {"name": "bare"},
    {"name": "landslide", "parent": "bare", "conditions": [{"feature": "rough", "op": ">", "value": 1.0}]},
    {"name": "road", "parent": "bare", "conditions": [{"feature": "rough", "op": "<", "value": 0.5}]},
]


def table(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"area_m2": np.full(n, 10.0), **columns})


def test_objects_descend_into_the_first_child_that_takes_them():
    features = table(exg=[0.3, 0.0, 0.0, 0.0, 0.3], rough=[2.0, 2.0, 0.2, 0.7, 0.2])
    result = classify(features, parse_rules(rules_with(HIERARCHY)), chain_graph(5))
    assert result.classes.tolist() == ["vegetation", "landslide", "road", "bare", "vegetation"]
    assert result.landslide.tolist() == [False, True, False, False, False]
    logged = [(r["class"], r["feature"], r["value"]) for r in result.thresholds]
    assert ("landslide", "rough", 1.0) in logged and ("vegetation", "exg", 0.1) in logged


def test_objects_no_top_class_takes_stay_unclassified():
    only = {"name": "landslide", "conditions": [{"feature": "rough", "op": ">=", "value": 1}]}
    rules = parse_rules(rules_with([only]))
    result = classify(table(rough=[1.0, 0.5]), rules, chain_graph(2))
    assert result.classes.tolist() == ["landslide", UNCLASSIFIED]


def test_otsu_threshold_splits_two_groups_and_is_clamped():
    values = [0.0, 0.01, 0.02, 0.3, 0.31, 0.32]
    classes = [{"name": "vegetation", "conditions": [{"feature": "exg", "op": ">", "otsu": [0.0, 1.0]}]},
               {"name": "landslide"}]
    result = classify(table(exg=values), parse_rules(rules_with(classes)), chain_graph(6))
    assert result.classes.tolist() == ["landslide"] * 3 + ["vegetation"] * 3
    assert 0.02 < result.thresholds[0]["value"] < 0.3 and result.thresholds[0]["method"] == "otsu"
    classes[0]["conditions"][0]["otsu"] = [0.5, 0.6]
    clamped = classify(table(exg=values), parse_rules(rules_with(classes)), chain_graph(6))
    assert clamped.thresholds[0]["value"] == 0.5 and "clamped" in clamped.thresholds[0]["note"]
    assert (clamped.classes == "landslide").all()


def test_quantile_threshold_comes_from_labelled_samples_or_falls_back():
    classes = [{"name": "landslide", "conditions": [
        {"feature": "rough", "op": ">=", "quantile": 0.0, "fallback": 5.0}]}]
    rules = parse_rules(rules_with(classes, output={"landslide_classes": ["landslide"], "min_samples": 2}))
    rough = [3.0, 2.0, 1.0, 4.0]
    samples = np.array([1.0, 0.8, 0.1, np.nan])  # objects 0 and 1 lie mostly inside reference labels
    result = classify(table(rough=rough), rules, chain_graph(4), samples)
    assert result.thresholds[0]["value"] == 2.0 and result.thresholds[0]["n_objects"] == 2
    assert result.classes.tolist() == ["landslide", "landslide", UNCLASSIFIED, "landslide"]
    without = classify(table(rough=rough), rules, chain_graph(4), None)
    assert without.thresholds[0]["value"] == 5.0 and without.thresholds[0]["note"].startswith("fallback")
    assert rules.needs_samples()


def test_a_feature_without_values_is_skipped_and_logged():
    classes = [{"name": "landslide", "conditions": [{"feature": "rough", "op": ">", "value": 1.0},
                                                   {"feature": "mean_slope", "op": ">", "value": 15}]}]
    result = classify(table(rough=[2.0, 0.5], mean_slope=[np.nan, np.nan]), parse_rules(rules_with(classes)),
                      chain_graph(2))
    assert result.classes.tolist() == ["landslide", UNCLASSIFIED]
    assert "skipped" in result.thresholds[1]["note"]


def test_an_object_missing_its_own_value_fails_the_condition():
    classes = [{"name": "landslide", "conditions": [{"feature": "mean_slope", "op": ">", "value": 15}]}]
    result = classify(table(mean_slope=[30.0, np.nan]), parse_rules(rules_with(classes)), chain_graph(2))
    assert result.classes.tolist() == ["landslide", UNCLASSIFIED]


def test_unknown_feature_names_the_available_ones():
    classes = [{"name": "landslide", "conditions": [{"feature": "slopee", "op": ">", "value": 15}]}]
    with pytest.raises(RuleError, match="slopee.*available"):
        classify(table(mean_slope=[30.0]), parse_rules(rules_with(classes)), chain_graph(1))


def test_growing_joins_touching_candidates_ring_by_ring():
    classes = [{"name": "landslide", "conditions": [{"feature": "rough", "op": ">", "value": 1.0}]}]
    grow = {"rounds": 2, "border_ratio": 0.25, "conditions": [{"feature": "rough", "op": ">", "value": 0.4}]}
    rules = parse_rules(rules_with(classes, grow=grow))
    # Object 2 is landslide; 1 and 3 touch it (4 of 16 px), then 0 and 4 touch those; 5 is smooth.
    result = classify(table(rough=[0.5, 0.5, 2.0, 0.5, 0.5, 0.1, 0.5]), rules, chain_graph(7))
    assert result.landslide.tolist() == [True, True, True, True, True, False, False]
    assert result.cleanup["grown_objects"] == 4
    assert [r["class"] for r in result.thresholds] == ["landslide", "grow"]


def test_clean_up_fills_enclosed_patches_and_drops_small_regions():
    graph = chain_graph(6)
    graph.perimeter = np.array([4.0, 8.0, 8.0, 8.0, 16.0, 4.0])  # object 2 only borders 1 and 3
    landslide = np.array([True, True, False, True, False, True])
    area = np.array([10.0, 10.0, 5.0, 10.0, 10.0, 4.0])
    cleaned, summary = clean_up(landslide, area, graph, Cleanup(fill_max_area_m2=6, fill_border_ratio=0.75,
                                                                min_area_m2=8))
    # 2 is enclosed and small: filled, so 0..3 make one region of 35 m2; 5 alone (4 m2) is dropped.
    assert cleaned.tolist() == [True, True, True, True, False, False]
    assert summary == {"filled_objects": 1, "dropped_objects": 1, "dropped_regions": 1, "landslide_regions": 1}


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(colour=1), "rules.toml: colour: unknown key"),
    (lambda d: d["segmentation"].update(scale=1), r"\[segmentation\]\.scale: unknown key"),
    (lambda d: d["classes"][0]["conditions"][0].update(colour=1), r"\[classes\[0\]\.conditions\[0\]\]\.colour: unknown key"),
    (lambda d: d["classes"][0]["conditions"][0].update(value="x"),
     r"\[classes\[0\]\.conditions\[0\]\]\.value: Input should be a valid number, got 'x'"),
    (lambda d: d["classes"][1].pop("name"), r"\[classes\[1\]\]\.name: missing"),
    (lambda d: d["classes"].append({"name": "x", "parent": "nope"}), "parent 'nope' must be defined before"),
    (lambda d: d["classes"].append({"name": "bare"}), "defined twice"),
    (lambda d: d["classes"][0]["conditions"][0].update(op="=="),
     r"\[classes\[0\]\.conditions\[0\]\]\.op: must be one of \['<', '<=', '>', '>='\], got '=='"),
    (lambda d: d["classes"][0]["conditions"][0].update(otsu=[0, 1]),
     r"\[classes\[0\]\]\.conditions\[0\]: needs exactly one of value, otsu, quantile"),
    (lambda d: d["classes"][0]["conditions"].append({"feature": "exg", "op": ">", "quantile": 0.5}),
     r"\[classes\[0\]\]\.conditions\[1\]: quantile must come with a fallback"),
    (lambda d: d.update(output={"landslide_classes": ["slide"]}), r"\[output\]\.landslide_classes: names undefined classes"),
    (lambda d: d["segmentation"].update(classify_scale=15), r"\[segmentation\]\.classify_scale: 15 is not one of the scales"),
    (lambda d: d["segmentation"].update(scales=[20, 10]), "segmentation: scales must be a non-empty increasing"),
    (lambda d: d.update(grow={"rounds": 1, "border_ratio": 0}), r"\[grow\]\.border_ratio: Input should be greater than 0"),
])
def test_invalid_rule_files_are_refused_with_a_reason(change, message):
    data = rules_with([dict(c, conditions=[dict(x) for x in c.get("conditions", [])]) for c in HIERARCHY])
    change(data)
    with pytest.raises(RuleError, match=message):
        parse_rules(data, "rules.toml")


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("[segmentation\nscales = [1]")
    with pytest.raises(RuleError, match="rules.toml: invalid TOML"):
        load_rules(path)


def test_a_rule_file_names_the_file_and_the_key_path(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[classes]]\nname = "landslide"\nconditions = [{ feature = "rough", op = ">", value = 1 }]\n'
                    "[grow]\nrounds = -1\nborder = 0.5\n")
    with pytest.raises(RuleError) as error:
        load_rules(path)
    assert str(error.value) == (f"{path}: [grow].rounds: Input should be greater than or equal to 0, got -1; "
                                "[grow].border: unknown key")


def test_the_shipped_rules_load():
    rules = load_rules(SHIPPED)
    assert rules.classify_scale in rules.segmentation.scales
    assert rules.landslide_classes == ("landslide",)
    names = [c.name for c in rules.classes]
    assert names.index("vegetation") < names.index("landslide")
    assert not rules.needs_samples() and rules.grow.rounds > 0
