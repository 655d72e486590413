"""Evaluation: each fold model scored on its validation fold, checked by a pandera schema."""


from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from landslide_pipeline.defs.checks import schema_failures
from landslide_pipeline.defs.publish import publish_report
from landslide_pipeline.defs.resources import CHALLENGER_ALIAS, CHAMPION_ALIAS, DataStore, MlflowTracking
from landslide_pipeline.layout import DataLayout, LabelSource, csv_twin
from landslide_pipeline.model_store import model_metadata
from landslide_pipeline.reports.experiments import ExperimentReport, write_comparison_report
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.reports.panels import panel_tiles
from landslide_pipeline.schemas import EvaluationTable
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.training.checkpoint import fold_ensemble, read_spec, save_model
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.evaluate import (
    ENSEMBLE,
    FOLD,
    best_fold_models,
    compare_label_sources,
    cross_validation_f1,
    evaluate_models,
    fold_model_dirs,
    obia_training_set,
    pick_champion,
    rank_architectures,
    read_evaluation_table,
    summarise_by_architecture,
    trained_architectures,
)


def schema_check(table: pd.DataFrame, settings: PipelineSettings, layout: DataLayout,
                 sources: list[str]) -> AssetCheckResult:
    """The pandera EvaluationTable schema, and a validation row per source x trained architecture x fold."""
    if (failed := schema_failures(EvaluationTable, table)) is not None:
        return failed
    trained, _ = trained_architectures(layout, sources, settings.architectures, settings.n_folds)
    expected = {(s, a, f) for s in sources for a in trained for f in range(settings.n_folds)}
    validation = table[(table["split"] == "validation") & (table["kind"] == FOLD)]
    missing = expected - set(zip(validation["label_source"], validation["architecture"], validation["fold"]))
    return AssetCheckResult(passed=not missing, metadata={
        "rows": len(table), "missing": ", ".join(f"{s}:{a}|{f}" for s, a, f in sorted(missing)) or "none"})


def _trained(context: AssetExecutionContext, layout: DataLayout, sources: list[str],
             settings: PipelineSettings) -> list[str]:
    """The configured architectures with every fold trained; logs the ones left out and why."""
    architectures, missing = trained_architectures(layout, sources, settings.architectures, settings.n_folds)
    for architecture, absent in missing.items():
        context.log.warning(f"{architecture} left out: no model for {', '.join(absent)}")
    return architectures


def _register(context: AssetExecutionContext, layout: DataLayout, mlflow_tracking: MlflowTracking,
              best: dict, alias: str) -> tuple[dict[str, str], str, str]:
    """Registers the model of an evaluation-table row under ``alias``: (tags, version, URI)."""
    tags = {"architecture": best["architecture"], "kind": best["kind"], "fold": str(best["fold"]),
            "split_of_f1": best["split"], "f1": f"{best['f1']:.4f}", "kappa": f"{best['kappa']:.4f}",
            "threshold": f"{best['threshold']:.3f}", "cv_f1": f"{best['cv_f1']:.4f}",
            "label_source": best["label_source"], "dagster.run_id": context.run.run_id}
    model_dir = (layout.ensemble(best["label_source"], best["architecture"]) if best["kind"] == ENSEMBLE
                 else layout.model(best["label_source"], best["architecture"], int(best["fold"])))
    description = "\n".join(f"{k}: {v}" for k, v in model_metadata(read_spec(model_dir)).items()
                            if k in ("input", "output", "decision"))
    version, uri = mlflow_tracking.register_model(best["mlflow_run_id"], tags, description, alias)
    context.log.info(f"{alias}: {best['architecture']} {best['kind']} (fold {best['fold']}, {best['split']} F1 "
                     f"{best['f1']:.3f}, cross-validated F1 {best['cv_f1']:.3f}) -> {uri} v{version}")
    return tags, version, uri


class EnsembleConfig(Config):
    """How the fold models of an architecture are combined."""

    flips: bool = Field(False, description="Test-time flips: also average the two mirror images (3x mapping cost).")


class ChampionConfig(Config):
    """Which model of the best architecture becomes the champion."""

    kind: Literal["ensemble", "single"] = Field(
        "ensemble", description="ensemble: the fold ensemble (k x the mapping cost); single: the best fold model.")


def build_evaluation_assets(settings: PipelineSettings) -> list[AssetsDefinition | AssetChecksDefinition]:
    """The evaluation table over every architecture x fold, its blocking schema check, and the
    champion model registered from it."""

    @asset(group_name="evaluation", kinds={"pytorch", "mlflow"}, deps=["trained_model"], code_version="1")
    def fold_ensembles(context: AssetExecutionContext, config: EnsembleConfig, data_store: DataStore,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """Per architecture, its k fold models as one model: the mean of their landslide
        probabilities (with flips: also over the two mirror images), decided at the threshold that
        maximises F1 over their pooled out-of-fold validation predictions. Saved beside the fold
        models and logged to MLflow as a run of the cross-validation."""
        layout = data_store.layout
        facts = {}
        architectures = _trained(context, layout, [LabelSource.MANUAL], settings)
        for architecture in architectures:
            dirs = fold_model_dirs(layout, LabelSource.MANUAL, architecture, settings.n_folds)
            model, spec, pooled = fold_ensemble(dirs, config.flips)
            tags = {"dagster.run_id": context.run.run_id, "architecture": architecture, "label_source": LabelSource.MANUAL,
                    "landslide.kind": ENSEMBLE}
            with mlflow_tracking.sibling_run(spec.members[0].mlflow_run_id, f"{architecture}-ensemble-{LabelSource.MANUAL}",
                                             tags) as run:
                spec = replace(spec, mlflow_run_id=run.info.run_id)
                mlflow_tracking.log_params({"members": len(spec.members), "flips": config.flips,
                                            "threshold": spec.threshold, "architecture": architecture})
                with atomic_directory(layout.ensemble(LabelSource.MANUAL, architecture)) as staging:
                    save_model(staging, model, spec)
                    example = TrainingSet.load(layout.training_set(LabelSource.MANUAL)).images[np.array([0, 0])]
                    mlflow_tracking.log_model(model, spec, example, staging)
            facts[architecture] = {"threshold": spec.threshold, "members": len(spec.members),
                                   "oof_pixels": pooled.pixels, "mlflow_run_id": run.info.run_id}
            context.log.info(f"{architecture}: ensemble of {len(spec.members)} fold models, out-of-fold threshold "
                             f"{spec.threshold:.3f}")
        return MaterializeResult(metadata={"flips": config.flips, **{
            f"{a}_{k}": v for a, f in facts.items() for k, v in f.items()}})

    @asset(group_name="evaluation", kinds={"pandas", "parquet"}, deps=["trained_model", fold_ensembles, "training_set"],
           code_version="2")
    def evaluation_table(context: AssetExecutionContext, data_store: DataStore,
                         mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """Precision, recall, F1, IoU, accuracy and kappa of the landslide class per architecture x
        fold x split at each model's calibrated threshold (and arg-max F1 beside it): each fold
        model on its fold's validation tiles and on the held-out test tiles, each fold ensemble on
        the test tiles, from confusion counts summed over all pixels of the split. Each fold run
        gets its test-split scores in MLflow, each cross-validation's parent run the mean and std
        over folds and the cross-validated F1."""
        layout = data_store.layout
        samples = TrainingSet.load(layout.training_set(LabelSource.MANUAL))
        architectures = _trained(context, layout, [LabelSource.MANUAL], settings)
        table = evaluate_models(layout, [LabelSource.MANUAL], architectures, settings.n_folds, samples, ensembles=True)
        with atomic_directory(layout.evaluation) as staging:
            table.to_parquet(staging / layout.evaluation_table.name, index=False)
            table.to_csv(staging / csv_twin(layout.evaluation_table.name), index=False)
        mlflow_tracking.log_evaluation(table)
        summary = summarise_by_architecture(table)
        context.log.info("evaluation per architecture (mean over folds):\n" + summary.to_string(index=False))
        return MaterializeResult(metadata={
            "table": MetadataValue.md(table.drop(columns=["mlflow_run_id"]).to_markdown(index=False, floatfmt=".3f")),
            "summary": MetadataValue.md(summary.to_markdown(index=False, floatfmt=".3f")),
            "mean_validation_f1": float(table.loc[table["split"] == "validation", "f1"].mean()),
            **{f"cv_f1_{a}": float(f1) for a, f1 in cross_validation_f1(table).items()},
            **{f"ensemble_test_f1_{r.architecture}": float(r.f1)
               for r in table[(table["kind"] == ENSEMBLE) & (table["split"] == "test")].itertuples()},
            "path": MetadataValue.path(str(layout.evaluation_table)),
        })

    @asset_check(asset=evaluation_table, blocking=True,
                 description="pandera EvaluationTable schema, and one row per configured architecture x fold")
    def evaluation_table_schema(data_store: DataStore) -> AssetCheckResult:
        return schema_check(read_evaluation_table(data_store.layout), settings, data_store.layout, [LabelSource.MANUAL])

    @asset(group_name="evaluation", kinds={"mlflow"}, deps=[evaluation_table], code_version="2")
    def champion_model(context: AssetExecutionContext, config: ChampionConfig, data_store: DataStore,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """The champion, chosen on validation only: the architecture with the best cross-validated
        F1 (the F1 of its pooled out-of-fold predictions, not the best of folds scored on different
        tiles), as its fold ensemble (or, with ``kind: single``, its best fold model), registered in
        MLflow and given the alias ``champion``: load it with ``models:/landslide-segmenter@champion``.
        With two or more architectures the second-best one's is registered too, alias ``challenger``."""
        layout = data_store.layout
        table = read_evaluation_table(layout)
        tags, version, uri = _register(context, layout, mlflow_tracking, pick_champion(table, config.kind), CHAMPION_ALIAS)
        challenger = {}
        if len(rank_architectures(table)) > 1:
            _, number, _ = _register(context, layout, mlflow_tracking, pick_champion(table, config.kind, place=1),
                                     CHALLENGER_ALIAS)
            challenger = {"challenger_version": number}
        return MaterializeResult(metadata={**tags, "version": version, "model_uri": uri, **challenger})

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
        samples = obia_training_set(layout)
        architectures = _trained(context, layout, list(LabelSource.ALL), settings)
        table = evaluate_models(layout, LabelSource.ALL, architectures, settings.n_folds, samples)
        summary = compare_label_sources(table, LabelSource.MANUAL, LabelSource.OBIA)
        models = best_fold_models(table, layout, LabelSource.ALL, architectures)
        config = {"architectures": architectures, "folds": settings.n_folds,
                  "reference": LabelSource.MANUAL, "obia_training_set_id": samples.set_id}

        def write(staging: Path, links: MlflowLinks) -> ExperimentReport:
            table.to_parquet(staging / layout.label_source_table.name, index=False)
            table.to_csv(staging / csv_twin(layout.label_source_table.name), index=False)
            return write_comparison_report(
                table, summary, "label_source", "Manual vs object-oriented training labels (study A, Table 6)",
                "Each architecture trained on manual and on object-oriented labels over the same tiles, folds and "
                "test split; both scored against the manual masks. *_change = (obia - manual) / manual.",
                staging, links, config, panel_tiles(samples, models))

        published = publish_report(context, mlflow_tracking, layout.comparison, "label_sources", write,
                                   lambda report: {f"test_f1_change_{r.architecture}": float(r.f1_change)
                                                   for r in summary[summary["split"] == "test"].itertuples()})
        context.log.info("manual vs object-oriented training labels (scored against manual masks):\n"
                         + summary.to_string(index=False))
        return MaterializeResult(metadata={**published.metadata(),
                                           "path": MetadataValue.path(str(layout.label_source_table))})

    @asset_check(asset=label_source_comparison, blocking=True,
                 description="pandera EvaluationTable schema, and a row per label source x architecture x fold")
    def label_source_comparison_schema(data_store: DataStore) -> AssetCheckResult:
        return schema_check(pd.read_parquet(data_store.layout.label_source_table), settings, data_store.layout,
                            list(LabelSource.ALL))

    return [fold_ensembles, evaluation_table, evaluation_table_schema, champion_model, label_source_comparison,
            label_source_comparison_schema]
