"""Evaluation: each fold model scored on its validation fold, checked by a pandera schema."""


import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, AssetExecutionContext, AssetsDefinition,
    MaterializeResult, MetadataValue, asset, asset_check,
)

from landslide_pipeline.defs.report_assets import panel_tiles, report_metadata
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.defs.training_assets import MANUAL, OBIA
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.schemas import EvaluationTable
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.reports.experiments import REPORT, ExperimentReport, write_comparison_report
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.training.evaluate import (
    best_fold, compare_label_sources, evaluate_fold_model, pick_champion, summarise_by_architecture,
)

TABLE = "evaluation.parquet"
COMPARISON = "label_sources.parquet"


def read_evaluation_table(layout: DataLayout) -> pd.DataFrame:
    return pd.read_parquet(layout.evaluation / TABLE)


def evaluate_models(settings: PipelineSettings, layout: DataLayout, sources: list[str],
                    samples: TrainingSet) -> pd.DataFrame:
    """Rows of every architecture x fold model of each label source, scored on ``samples``."""
    rows = []
    for source in sources:
        prefix = "" if source == MANUAL else f"{source}_"
        for architecture in settings.architectures:
            for fold in range(settings.n_folds):
                model_dir = layout.model(source, architecture, fold)
                if not model_dir.is_dir():
                    raise FileNotFoundError(f"{model_dir}: no trained model; materialize {prefix}trained_model "
                                            f"partition {architecture}|{fold} first")
                rows.extend(evaluate_fold_model(model_dir, samples))
    return pd.DataFrame(rows)


def schema_check(table: pd.DataFrame, settings: PipelineSettings, sources: list[str]) -> AssetCheckResult:
    """The pandera EvaluationTable schema, and a validation row per source x architecture x fold."""
    try:
        EvaluationTable.validate(table, lazy=True)
    except pa.errors.SchemaErrors as err:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, metadata={
            "failures": MetadataValue.md(err.failure_cases.head(50).to_markdown(index=False))})
    expected = {(s, a, f) for s in sources for a in settings.architectures for f in range(settings.n_folds)}
    validation = table[table["split"] == "validation"]
    missing = expected - set(zip(validation["label_source"], validation["architecture"], validation["fold"]))
    return AssetCheckResult(passed=not missing, metadata={
        "rows": len(table), "missing": ", ".join(f"{s}:{a}|{f}" for s, a, f in sorted(missing)) or "none"})


def build_evaluation_assets(settings: PipelineSettings) -> list[AssetsDefinition | AssetChecksDefinition]:
    """The evaluation table over every architecture x fold, its blocking schema check, and the
    champion model registered from it."""

    @asset(group_name="evaluation", kinds={"pandas", "parquet"}, deps=["trained_model", "training_set"],
           code_version="1")
    def evaluation_table(context: AssetExecutionContext, data_store: DataStore) -> MaterializeResult:
        """Precision, recall, F1, IoU, accuracy and kappa of the landslide class per architecture x
        fold x split: each fold model on its fold's validation tiles and on the held-out test
        tiles, from confusion counts summed over all pixels of the split."""
        layout = data_store.layout
        samples = TrainingSet.load(layout.training_set(MANUAL))
        table = evaluate_models(settings, layout, [MANUAL], samples)
        with atomic_directory(layout.evaluation) as staging:
            table.to_parquet(staging / TABLE, index=False)
            table.to_csv(staging / "evaluation.csv", index=False)
        summary = summarise_by_architecture(table)
        context.log.info("evaluation per architecture (mean over folds):\n" + summary.to_string(index=False))
        return MaterializeResult(metadata={
            "table": MetadataValue.md(table.drop(columns=["mlflow_run_id"]).to_markdown(index=False, floatfmt=".3f")),
            "summary": MetadataValue.md(summary.to_markdown(index=False, floatfmt=".3f")),
            "mean_validation_f1": float(table.loc[table["split"] == "validation", "f1"].mean()),
            "path": MetadataValue.path(str(layout.evaluation / TABLE)),
        })

    @asset_check(asset=evaluation_table, blocking=True,
                 description="pandera EvaluationTable schema, and one row per configured architecture x fold")
    def evaluation_table_schema(data_store: DataStore) -> AssetCheckResult:
        return schema_check(read_evaluation_table(data_store.layout), settings, [MANUAL])

    @asset(group_name="evaluation", kinds={"mlflow"}, deps=[evaluation_table], code_version="1")
    def champion_model(context: AssetExecutionContext, data_store: DataStore,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """The fold model with the best validation F1 (kappa breaks ties), registered in MLflow
        and given the alias ``champion``: load it with ``models:/landslide-segmenter@champion``."""
        table = read_evaluation_table(data_store.layout)
        best = pick_champion(table)
        tags = {"architecture": best["architecture"], "fold": str(best["fold"]), "f1": f"{best['f1']:.4f}",
                "kappa": f"{best['kappa']:.4f}", "label_source": best["label_source"],
                "dagster.run_id": context.run.run_id}
        version, uri = mlflow_tracking.register_champion(best["mlflow_run_id"], tags)
        context.log.info(f"champion: {best['architecture']} fold {best['fold']} (F1 {best['f1']:.3f}) -> {uri} v{version}")
        return MaterializeResult(metadata={**tags, "version": version, "model_uri": uri})

    @asset(group_name="evaluation", kinds={"pandas", "parquet"},
           deps=["trained_model", "obia_trained_model", "obia_training_set"], code_version="2")
    def label_source_comparison(context: AssetExecutionContext, data_store: DataStore,
                                mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """Study A's Table 6 as an experiment: each architecture trained on manual and on
        object-oriented labels (same tiles, folds and test split), both scored against the manual
        masks on the object-oriented training set's tiles. Rows as in the evaluation table, one
        set per label source; the summary gives each source's mean over folds per split and the
        object-oriented labels' relative change of each score."""
        layout = data_store.layout
        samples = TrainingSet.load(layout.training_set(OBIA))
        if samples.reference_source != MANUAL:
            raise ValueError("the object-oriented training set has no manual reference masks: materialize "
                             "training_set before obia_training_set, on surveys with manual labels")
        table = evaluate_models(settings, layout, [MANUAL, OBIA], samples)
        summary = compare_label_sources(table, MANUAL, OBIA)
        models = {f"{source} {a}": layout.model(source, a, best_fold(table[table["label_source"] == source], a))
                  for a in settings.architectures for source in (MANUAL, OBIA)}
        links = MlflowLinks(mlflow_tracking.resolved_tracking_uri(), mlflow_tracking.experiment_id())
        config = {"architectures": list(settings.architectures), "folds": settings.n_folds, "reference": MANUAL,
                  "obia_training_set_id": samples.set_id}
        with atomic_directory(layout.comparison) as staging:
            table.to_parquet(staging / COMPARISON, index=False)
            table.to_csv(staging / COMPARISON.replace(".parquet", ".csv"), index=False)
            report = write_comparison_report(
                table, summary, "label_source", "Manual vs object-oriented training labels (study A, Table 6)",
                "Each architecture trained on manual and on object-oriented labels over the same tiles, folds and "
                "test split; both scored against the manual masks. *_change = (obia - manual) / manual.",
                staging, links, config, panel_tiles(layout, samples, models))
            test = summary[summary["split"] == "test"]
            metrics = {f"test_f1_change_{row.architecture}": float(row.f1_change) for row in test.itertuples()}
            run_id = mlflow_tracking.log_report("label-source comparison", staging, metrics,
                                                {"dagster.run_id": context.run.run_id, "landslide.report": "label_sources"})
        context.log.info("manual vs object-oriented training labels (scored against manual masks):\n"
                         + summary.to_string(index=False))
        report = ExperimentReport(layout.comparison / REPORT, [layout.comparison / p.name for p in report.plots], summary)
        return MaterializeResult(metadata={
            **report_metadata(report, run_id), **metrics,
            "path": MetadataValue.path(str(layout.comparison / COMPARISON)),
        })

    @asset_check(asset=label_source_comparison, blocking=True,
                 description="pandera EvaluationTable schema, and a row per label source x architecture x fold")
    def label_source_comparison_schema(data_store: DataStore) -> AssetCheckResult:
        return schema_check(pd.read_parquet(data_store.layout.comparison / COMPARISON), settings, [MANUAL, OBIA])

    return [evaluation_table, evaluation_table_schema, champion_model, label_source_comparison,
            label_source_comparison_schema]
