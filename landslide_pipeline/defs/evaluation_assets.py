"""Evaluation: each fold model scored on its validation fold, checked by a pandera schema."""


import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, AssetExecutionContext, AssetsDefinition,
    MaterializeResult, MetadataValue, asset, asset_check,
)

from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.defs.training_assets import LABEL_SOURCE
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.schemas import EvaluationTable
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.evaluate import evaluate_fold_model, pick_champion, summarise_by_architecture

TABLE = "evaluation.parquet"


def read_evaluation_table(layout: DataLayout) -> pd.DataFrame:
    return pd.read_parquet(layout.evaluation / TABLE)


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
        samples = TrainingSet.load(layout.training_set(LABEL_SOURCE))
        rows = []
        for architecture in settings.architectures:
            for fold in range(settings.n_folds):
                model_dir = layout.model(architecture, fold)
                if not model_dir.is_dir():
                    raise FileNotFoundError(f"{model_dir}: no trained model; materialize trained_model "
                                            f"partition {architecture}|{fold} first")
                rows.extend(evaluate_fold_model(model_dir, samples))
        table = pd.DataFrame(rows)
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
        table = read_evaluation_table(data_store.layout)
        try:
            EvaluationTable.validate(table, lazy=True)
        except pa.errors.SchemaErrors as err:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, metadata={
                "failures": MetadataValue.md(err.failure_cases.head(50).to_markdown(index=False))})
        expected = {(a, f) for a in settings.architectures for f in range(settings.n_folds)}
        validation = table[table["split"] == "validation"]
        missing = expected - set(zip(validation["architecture"], validation["fold"]))
        return AssetCheckResult(passed=not missing, metadata={
            "rows": len(table), "missing": ", ".join(f"{a}|{f}" for a, f in sorted(missing)) or "none"})

    @asset(group_name="evaluation", kinds={"mlflow"}, deps=[evaluation_table], code_version="1")
    def champion_model(context: AssetExecutionContext, data_store: DataStore,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """The fold model with the best validation F1 (kappa breaks ties), registered in MLflow
        and given the alias ``champion``: load it with ``models:/landslide-segmenter@champion``."""
        table = read_evaluation_table(data_store.layout)
        best = pick_champion(table)
        tags = {"architecture": best["architecture"], "fold": str(best["fold"]), "f1": f"{best['f1']:.4f}",
                "kappa": f"{best['kappa']:.4f}", "label_source": best["label_source"],
                "dagster.run_id": context.run_id}
        version, uri = mlflow_tracking.register_champion(best["mlflow_run_id"], tags)
        context.log.info(f"champion: {best['architecture']} fold {best['fold']} (F1 {best['f1']:.3f}) -> {uri} v{version}")
        return MaterializeResult(metadata={**tags, "version": version, "model_uri": uri})

    return [evaluation_table, evaluation_table_schema, champion_model]
