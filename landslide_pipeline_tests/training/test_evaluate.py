import pandas as pd
import pytest

from landslide_pipeline.defs.evaluation_assets import alias_plan
from landslide_pipeline.training.evaluate import (
    compared_label_sources,
    cross_validation_f1,
    label_source_summary,
    pick_champion,
    rank_models,
)


def rows(source: str, variant: str, tp: list[int], fp: int = 10, fn: int = 10) -> list[dict]:
    """Validation and test rows of a two-fold model and its ensemble; F1 per fold from ``tp``."""
    inputs = variant.partition("@")[2] or "rgb-slope"
    out = []
    for fold, hits in enumerate(tp):
        for split in ("validation", "test"):
            f1 = 2 * hits / (2 * hits + fp + fn)
            out.append({"label_source": source, "architecture": variant, "inputs": inputs, "kind": "fold",
                        "fold": fold, "split": split, "tp": hits, "fp": fp, "fn": fn, "f1": f1, "kappa": f1,
                        "precision": f1, "recall": f1, "iou": f1, "mlflow_run_id": f"{source}-{variant}-{fold}"})
    out.append({**out[-1], "kind": "ensemble", "fold": -1, "split": "test", "mlflow_run_id": f"{source}-{variant}-ens"})
    return out


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(rows("manual", "unet", [50, 60]) + rows("obia", "unet", [80, 90])
                        + rows("manual", "unet@rgb", [40, 40]) + rows("union", "unet", [70, 55])
                        + rows("manual", "linknet", [56, 55]))


def test_the_champion_may_come_from_object_oriented_labels(table):
    estimate = cross_validation_f1(table)
    assert estimate[("obia", "unet")] == pytest.approx(2 * 170 / (2 * 170 + 40))
    assert rank_models(table)[:2] == [("obia", "unet"), ("union", "unet")]
    champion = pick_champion(table)
    assert (champion["label_source"], champion["architecture"], champion["kind"]) == ("obia", "unet", "ensemble")
    assert champion["cv_f1"] == pytest.approx(estimate[("obia", "unet")])
    single = pick_champion(table, kind="single")
    assert (single["label_source"], single["fold"], single["split"]) == ("obia", 1, "validation")


def test_per_input_set_and_per_source_choices_stay_within_them(table):
    assert pick_champion(table, inputs="rgb")["architecture"] == "unet@rgb"
    assert pick_champion(table, label_source="manual")["architecture"] == "linknet"
    plan = alias_plan(table, "ensemble")
    assert {a: (r["label_source"], r["architecture"]) for a, r in plan.items()} == {
        "champion": ("obia", "unet"), "challenger": ("union", "unet"), "champion-rgb": ("manual", "unet@rgb"),
        "champion-rgb-slope": ("obia", "unet"), "champion-manual": ("manual", "linknet"),
        "champion-obia": ("obia", "unet"), "champion-union": ("union", "unet"),
        # and every model scored, by label source, architecture and input set
        "manual-unet-rgb-slope": ("manual", "unet"), "obia-unet-rgb-slope": ("obia", "unet"),
        "manual-unet-rgb": ("manual", "unet@rgb"), "union-unet-rgb-slope": ("union", "unet"),
        "manual-linknet-rgb-slope": ("manual", "linknet")}


def test_the_label_source_summary_compares_each_source_with_the_manual_one(table):
    compared = compared_label_sources(table)
    assert set(compared["architecture"]) == {"unet"}  # unet@rgb and linknet have one source each
    summary = label_source_summary(table).set_index(["architecture", "split", "label_source"])
    manual, obia = summary.loc[("unet", "test", "manual")], summary.loc[("unet", "test", "obia")]
    assert obia["f1_change"] == pytest.approx((obia["f1"] - manual["f1"]) / manual["f1"])
    assert manual["f1_change"] == 0 and obia["folds_better"] == 2
    assert summary.loc[("unet", "validation", "union"), "folds_better"] == 1  # 70 beats 50; 55 does not beat 60
