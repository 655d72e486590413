import pandas as pd
import pandera.pandas as pa
import pytest

from landslide_pipeline.schemas import EvaluationTable


def row(arch: str, fold: int, **over) -> dict:
    base = dict(architecture=arch, fold=fold, split="validation", label_source="manual", inputs="rgb-slope", reference="manual",
                n_tiles=4, tp=10, fp=2, fn=3, tn=85,
                precision=0.83, recall=0.77, f1=0.8, iou=0.67, accuracy=0.95, kappa=0.77, threshold=0.42,
                precision_argmax=0.9, recall_argmax=0.7, f1_argmax=0.79, kappa_argmax=0.76, kind="fold", flips=False,
                members=1, best_epoch=3, train_seconds=12.0, parameters=1000, mlflow_run_id="abc")
    return {**base, **over}


def ensemble_row(arch: str, **over) -> dict:
    return row(arch, -1, kind="ensemble", split="test", members=3, best_epoch=0, **over)


def test_a_complete_table_passes():
    rows = [row(a, f, split=s) for a in ("unet", "linknet") for f in range(3) for s in ("validation", "test")]
    EvaluationTable.validate(pd.DataFrame(rows))


def test_ensemble_rows_join_the_table_on_the_test_split_only():
    rows = [row("unet", f, split=s) for f in range(3) for s in ("validation", "test")]
    EvaluationTable.validate(pd.DataFrame(rows + [ensemble_row("unet", flips=True)]))
    for bad in (dict(split="validation"), dict(members=1), dict(fold=0)):
        with pytest.raises(pa.errors.SchemaError, match="a fold model has a fold"):
            EvaluationTable.validate(pd.DataFrame(rows + [{**ensemble_row("unet"), **bad}]))
    with pytest.raises(pa.errors.SchemaError, match="a fold model has a fold"):
        EvaluationTable.validate(pd.DataFrame(rows[:-1] + [{**rows[-1], "best_epoch": 0}]))


@pytest.mark.parametrize("bad", [dict(threshold=0.0), dict(threshold=1.0), dict(f1_argmax=1.5), dict(kind="stack")])
def test_thresholds_and_argmax_scores_are_checked(bad):
    with pytest.raises(pa.errors.SchemaErrors):
        EvaluationTable.validate(pd.DataFrame([row("unet", 0, **bad), row("unet", 1)]), lazy=True)


def test_a_test_split_missing_a_fold_fails():
    rows = [row("unet", f) for f in range(3)] + [row("unet", 0, split="test")]
    with pytest.raises(pa.errors.SchemaError, match="every architecture"):
        EvaluationTable.validate(pd.DataFrame(rows))


@pytest.mark.parametrize("bad", [dict(f1=1.2), dict(kappa=-1.5), dict(precision=-0.1), dict(tp=-1), dict(split="train")])
def test_out_of_range_scores_fail(bad):
    table = pd.DataFrame([row("unet", 0, **bad), row("unet", 1)])
    with pytest.raises(pa.errors.SchemaErrors):
        EvaluationTable.validate(table, lazy=True)


def test_missing_fold_or_duplicate_key_fails():
    with pytest.raises(pa.errors.SchemaError, match="every architecture"):
        EvaluationTable.validate(pd.DataFrame([row("unet", 0), row("unet", 1), row("linknet", 0)]))
    with pytest.raises(pa.errors.SchemaError):
        EvaluationTable.validate(pd.DataFrame([row("unet", 0), row("unet", 0)]))


def test_two_label_sources_share_a_table_but_each_needs_every_fold():
    rows = [row("unet", f, label_source=source) for source in ("manual", "obia") for f in range(2)]
    EvaluationTable.validate(pd.DataFrame(rows))
    with pytest.raises(pa.errors.SchemaError, match="every architecture"):
        EvaluationTable.validate(pd.DataFrame(rows[:-1]))


def experiment_row(variant: str, fold: int, **over) -> dict:
    evaluation_only = ("label_source", "inputs", "reference", "mlflow_run_id", "kind", "flips", "members", "precision_argmax",
                       "recall_argmax", "f1_argmax", "kappa_argmax")
    base = {k: v for k, v in row("unet", fold).items() if k not in evaluation_only}
    return {**base, "variant": variant, "bands": "red+green+blue", "train_tiles": 40, **over}


def test_experiment_table_needs_every_fold_of_every_variant():
    from landslide_pipeline.schemas import ExperimentTable

    rows = [experiment_row(v, f) for v in ("image", "image+terrain") for f in range(2)]
    ExperimentTable.validate(pd.DataFrame(rows))
    with pytest.raises(pa.errors.SchemaError, match="every variant"):
        ExperimentTable.validate(pd.DataFrame(rows[:-1]))
    with pytest.raises(pa.errors.SchemaErrors):
        ExperimentTable.validate(pd.DataFrame([experiment_row("image", 0, train_tiles=0), experiment_row("image", 1)]),
                                 lazy=True)


def test_architecture_summary_of_an_evaluation_table_is_valid():
    from landslide_pipeline.reports.experiments import architecture_summary
    from landslide_pipeline.schemas import ArchitectureSummary

    rows = [row(a, f, split=s, f1=0.7 + 0.1 * f) for a in ("unet", "linknet") for f in range(2) for s in ("validation", "test")]
    summary = architecture_summary(pd.DataFrame(rows))
    ArchitectureSummary.validate(summary)
    assert summary.loc[0, "f1_mean"] == pytest.approx(0.75) and summary.loc[0, "folds"] == 2
    with pytest.raises(pa.errors.SchemaError):
        ArchitectureSummary.validate(summary.assign(f1_mean=1.5))
