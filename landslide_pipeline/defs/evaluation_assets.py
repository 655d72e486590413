"""Evaluation: every model of every label source scored on one scoring set, checked by a pandera
schema; the champion and the per-input-set and per-label-source aliases registered from it."""


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
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from landslide_pipeline.defs.automation_conditions import after_upstream_settles
from landslide_pipeline.defs.checks import schema_failures
from landslide_pipeline.defs.concurrency import CPU_POOL, heavy_step_tags
from landslide_pipeline.defs.publish import publish_report
from landslide_pipeline.defs.resources import CHALLENGER_ALIAS, CHAMPION_ALIAS, DataStore, MlflowTracking
from landslide_pipeline.layout import DataLayout, LabelSource, csv_twin
from landslide_pipeline.model_store import model_metadata
from landslide_pipeline.reports.experiments import ExperimentReport, write_comparison_report
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.reports.panels import panel_tiles
from landslide_pipeline.schemas import EvaluationTable
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory, fingerprint, remove_atomically
from landslide_pipeline.training.checkpoint import fold_ensemble, read_spec, save_model
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.evaluate import (
    ENSEMBLE,
    FOLD,
    best_fold_models,
    compared_label_sources,
    cross_validation_f1,
    evaluate_models,
    fold_model_dirs,
    label_source_summary,
    pick_champion,
    rank_models,
    read_evaluation_table,
    scoring_set,
    summarise_by_architecture,
    trained_models,
)
from landslide_pipeline.training.inputs import ModelVariant

#: The model assets of every label source, upstream of the evaluation.
MODEL_ASSETS = [f"{LabelSource.asset_prefix(source)}trained_model" for source in LabelSource.ALL]
TRAINING_SETS = [f"{LabelSource.asset_prefix(source)}training_set" for source in LabelSource.ALL]


def schema_check(table: pd.DataFrame, settings: PipelineSettings, layout: DataLayout) -> AssetCheckResult:
    """The pandera EvaluationTable schema, and a validation row per fold of every model trained."""
    if (failed := schema_failures(EvaluationTable, table)) is not None:
        return failed
    trained, _ = trained_models(layout, LabelSource.ALL, settings.model_variants, settings.n_folds)
    expected = {(s, v, f) for s, v in trained for f in range(settings.n_folds)}
    validation = table[(table["split"] == "validation") & (table["kind"] == FOLD)]
    missing = expected - set(zip(validation["label_source"], validation["architecture"], validation["fold"]))
    return AssetCheckResult(passed=not missing, metadata={
        "rows": len(table), "missing": ", ".join(f"{s}:{a}|{f}" for s, a, f in sorted(missing)) or "none"})


def _trained(context: AssetExecutionContext, layout: DataLayout, settings: PipelineSettings) -> list[tuple[str, str]]:
    """The (label source, variant) models with every fold trained; logs the partly trained ones."""
    models, missing = trained_models(layout, LabelSource.ALL, settings.model_variants, settings.n_folds)
    for model, absent in missing.items():
        context.log.warning(f"{model} left out: no model for {', '.join(absent)}")
    return models


def alias_plan(table: pd.DataFrame, kind: str) -> dict[str, dict]:
    """Alias -> the evaluation-table row of the model it names: ``champion`` (the best model of
    any label source and input set), ``challenger`` (the second best), ``champion-<input set>``
    (the best of each input set: ``champion-rgb`` maps surveys without a DEM),
    ``champion-<label source>`` (the best of each source: ``champion-obia``) and, for every model
    scored, ``<label source>-<architecture>-<input set>`` (``manual-unet-rgb``: its ensemble)."""
    plan = {CHAMPION_ALIAS: pick_champion(table, kind)}
    if len(rank_models(table)) > 1:
        plan[CHALLENGER_ALIAS] = pick_champion(table, kind, place=1)
    for inputs in sorted(table["inputs"].unique()):
        plan[f"{CHAMPION_ALIAS}-{inputs}"] = pick_champion(table, kind, inputs=inputs)
    for source in sorted(table["label_source"].unique()):
        plan[f"{CHAMPION_ALIAS}-{source}"] = pick_champion(table, kind, label_source=source)
    for source, key in table[["label_source", "architecture"]].drop_duplicates().itertuples(index=False):
        variant = ModelVariant.parse(key)
        rows = table[(table["label_source"] == source) & (table["architecture"] == key)]
        plan[f"{source}-{variant.architecture}-{variant.inputs}"] = pick_champion(rows, kind)
    return plan


def _register(context: AssetExecutionContext, layout: DataLayout, mlflow_tracking: MlflowTracking,
              best: dict, aliases: list[str]) -> str:
    """Registers the model of an evaluation-table row under ``aliases``; returns the version."""
    model_dir = (layout.ensemble(best["label_source"], best["architecture"]) if best["kind"] == ENSEMBLE
                 else layout.model(best["label_source"], best["architecture"], int(best["fold"])))
    spec = read_spec(model_dir)
    tags = {"architecture": best["architecture"], "inputs": best["inputs"], "bands": ",".join(spec.bands),
            "kind": best["kind"], "fold": str(best["fold"]), "split_of_f1": best["split"], "f1": f"{best['f1']:.4f}",
            "kappa": f"{best['kappa']:.4f}", "threshold": f"{best['threshold']:.3f}", "cv_f1": f"{best['cv_f1']:.4f}",
            "label_source": best["label_source"], "dagster.run_id": context.run.run_id}
    description = "\n".join(f"{k}: {v}" for k, v in model_metadata(spec).items() if k in ("input", "output", "decision"))
    version = mlflow_tracking.register_model(best["mlflow_run_id"], tags, description, aliases)
    context.log.info(f"{', '.join(aliases)}: {best['label_source']} {best['architecture']} {best['kind']} (fold "
                     f"{best['fold']}, {best['split']} F1 {best['f1']:.3f}, cross-validated F1 {best['cv_f1']:.3f}) "
                     f"-> v{version}")
    return version


class EnsembleConfig(Config):
    """How the fold models of a model are combined."""

    flips: bool = Field(False, description="Test-time flips: also average the two mirror images (3x mapping cost).")


class ChampionConfig(Config):
    """Which model of the best label source x variant becomes the champion."""

    kind: Literal["ensemble", "single"] = Field(
        "ensemble", description="ensemble: the fold ensemble (k x the mapping cost); single: the best fold model.")


def _ensemble(context: AssetExecutionContext, layout: DataLayout, mlflow_tracking: MlflowTracking, source: str,
              variant: str, dirs: list[Path], flips: bool) -> dict:
    """Builds, saves and logs one model's fold ensemble; returns its facts."""
    model, spec, pooled = fold_ensemble(dirs, flips)
    tags = {"dagster.run_id": context.run.run_id, "architecture": variant, "label_source": source,
            "landslide.kind": ENSEMBLE}
    with mlflow_tracking.sibling_run(spec.members[0].mlflow_run_id, f"{variant}-ensemble-{source}", tags) as run:
        spec = replace(spec, mlflow_run_id=run.info.run_id)
        mlflow_tracking.log_params({"members": len(spec.members), "flips": flips, "threshold": spec.threshold,
                                    "architecture": variant, "label_source": source})
        with atomic_directory(layout.ensemble(source, variant)) as staging:
            save_model(staging, model, spec)
            samples = TrainingSet.load(layout.training_set(source))
            example = samples.images[np.array([0, 0])][:, samples.band_indices(spec.bands)]
            mlflow_tracking.log_model(model, spec, example, staging)
    context.log.info(f"{source} {variant}: ensemble of {len(spec.members)} fold models, out-of-fold threshold "
                     f"{spec.threshold:.3f}")
    return {"threshold": spec.threshold, "members": len(spec.members), "oof_pixels": pooled.pixels,
            "mlflow_run_id": run.info.run_id}


def build_evaluation_assets(settings: PipelineSettings) -> list[AssetsDefinition | AssetChecksDefinition]:
    """The fold ensembles, the evaluation table over every model of every label source, its
    blocking schema check, the registered champion and aliases, and the label-source comparison."""

    @asset(group_name="evaluation", kinds={"pytorch", "mlflow"}, deps=MODEL_ASSETS, code_version="2", pool=CPU_POOL, op_tags=heavy_step_tags(),
           automation_condition=after_upstream_settles())
    def fold_ensembles(context: AssetExecutionContext, config: EnsembleConfig, data_store: DataStore,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """Per trained model (label source x variant), its k fold models as one model: the mean
        of their landslide probabilities (with flips: also over the two mirror images), decided at
        the threshold that maximises F1 over their pooled out-of-fold validation predictions.
        Saved beside the fold models and logged to MLflow as a run of the cross-validation."""
        layout = data_store.layout
        facts = {f"{source} {variant}": _ensemble(context, layout, mlflow_tracking, source, variant,
                                                  fold_model_dirs(layout, source, variant, settings.n_folds),
                                                  config.flips)
                 for source, variant in _trained(context, layout, settings)}
        return MaterializeResult(metadata={"flips": config.flips, **{
            f"{m}_{k}".replace(" ", "_"): v for m, f in facts.items() for k, v in f.items()}})

    @asset(group_name="evaluation", kinds={"pandas", "parquet"}, deps=[*MODEL_ASSETS, fold_ensembles, *TRAINING_SETS],
           code_version="3", pool=CPU_POOL, op_tags=heavy_step_tags(), automation_condition=after_upstream_settles(ignore=tuple(TRAINING_SETS)))
    def evaluation_table(context: AssetExecutionContext, data_store: DataStore,
                         mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """Precision, recall, F1, IoU, accuracy and kappa of the landslide class per model (label
        source x architecture x input set) x fold x split at each model's calibrated threshold
        (and arg-max F1 beside it): each fold model on its fold's validation tiles and on the
        held-out test tiles, each fold ensemble on the test tiles, from confusion counts summed
        over all pixels of the split. Every model is scored on one scoring set: the manual training
        set against the manual masks, or without manual labels the object-oriented set against its
        own held-out labels (column ``reference``). Each fold run gets its test-split scores in
        MLflow, each cross-validation's parent run the mean and std over folds and the
        cross-validated F1."""
        layout = data_store.layout
        samples = scoring_set(layout)
        models = _trained(context, layout, settings)
        table = evaluate_models(layout, models, settings.n_folds, samples, ensembles=True)
        # Validated before it is published: a table that fails the schema never reaches the disk,
        # so no later run (champion, reports, maps) can read it; the blocking check re-checks it.
        EvaluationTable.validate(table, lazy=True)
        with atomic_directory(layout.evaluation) as staging:
            table.to_parquet(staging / layout.evaluation_table.name, index=False)
            table.to_csv(staging / csv_twin(layout.evaluation_table.name), index=False)
            version = DataVersion(fingerprint([staging / layout.evaluation_table.name]))
        mlflow_tracking.log_evaluation(table)
        summary = summarise_by_architecture(table)
        context.log.info(f"scored on the {samples.label_source} training set against "
                         f"{samples.reference_source or samples.label_source} masks; mean over folds:\n"
                         + summary.to_string(index=False))
        return MaterializeResult(metadata={
            "table": MetadataValue.md(table.drop(columns=["mlflow_run_id"]).to_markdown(index=False, floatfmt=".3f")),
            "summary": MetadataValue.md(summary.to_markdown(index=False, floatfmt=".3f")),
            "scoring_set": samples.label_source, "reference": samples.reference_source or samples.label_source,
            "mean_validation_f1": float(table.loc[table["split"] == "validation", "f1"].mean()),
            **{f"cv_f1_{s}_{a}": float(f1) for (s, a), f1 in cross_validation_f1(table).items()},
            **{f"ensemble_test_f1_{r.label_source}_{r.architecture}": float(r.f1)
               for r in table[(table["kind"] == ENSEMBLE) & (table["split"] == "test")].itertuples()},
            "path": MetadataValue.path(str(layout.evaluation_table)),
        }, data_version=version)

    @asset_check(asset=evaluation_table, blocking=True,
                 description="pandera EvaluationTable schema, and one row per trained model x fold")
    def evaluation_table_schema(data_store: DataStore) -> AssetCheckResult:
        return schema_check(read_evaluation_table(data_store.layout), settings, data_store.layout)

    @asset(group_name="evaluation", kinds={"mlflow"}, deps=[evaluation_table], code_version="3",
           automation_condition=after_upstream_settles(blocking_checks=True))
    def champion_model(context: AssetExecutionContext, config: ChampionConfig, data_store: DataStore,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """The champion, chosen on validation only: the model (label source x architecture x
        input set) with the best cross-validated F1 (the F1 of its pooled out-of-fold predictions,
        not the best of folds scored on different tiles), as its fold ensemble (or, with ``kind:
        single``, its best fold model), registered in MLflow with the alias ``champion``: load it
        with ``models:/landslide-segmenter@champion``. Also registered: ``challenger`` (the
        second best), ``champion-<input set>`` (e.g. ``champion-rgb``, which maps surveys without
        a DEM) and ``champion-<label source>`` (e.g. ``champion-obia``); one version per model,
        carrying every alias that names it."""
        layout = data_store.layout
        plan = alias_plan(read_evaluation_table(layout), config.kind)
        by_model: dict[tuple, list[str]] = {}
        for alias, row in plan.items():
            by_model.setdefault((row["label_source"], row["architecture"], row["kind"], row["fold"]), []).append(alias)
        versions: dict[str, str] = {}
        for aliases in by_model.values():
            version = _register(context, layout, mlflow_tracking, plan[aliases[0]], aliases)
            versions |= {alias: version for alias in aliases}
        champion = plan[CHAMPION_ALIAS]
        return MaterializeResult(metadata={
            "label_source": champion["label_source"], "architecture": champion["architecture"],
            "inputs": champion["inputs"], "kind": champion["kind"], "cv_f1": float(champion["cv_f1"]),
            "version": versions[CHAMPION_ALIAS], "model_uri": f"models:/{mlflow_tracking.registered_model_name}@"
                                                              f"{CHAMPION_ALIAS}",
            "mlflow_run": mlflow_tracking.run_url(str(champion["mlflow_run_id"])),
            "aliases": MetadataValue.md(pd.DataFrame(
                [{"alias": a, "version": versions[a], "label_source": r["label_source"], "model": r["architecture"],
                  "inputs": r["inputs"], "kind": r["kind"], "cv_f1": r["cv_f1"]} for a, r in plan.items()]
            ).to_markdown(index=False, floatfmt=".3f")),
        }, data_version=DataVersion(f"{mlflow_tracking.registered_model_name}-v{versions[CHAMPION_ALIAS]}"))

    @asset(group_name="evaluation", kinds={"pandas", "parquet"}, deps=[evaluation_table], code_version="3",
           pool=CPU_POOL, op_tags=heavy_step_tags(), automation_condition=after_upstream_settles(blocking_checks=True))
    def label_source_comparison(context: AssetExecutionContext, data_store: DataStore,
                                mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """Study A's Table 6 from the evaluation table: each variant trained on two or more label
        sources (manual, object-oriented, union), all scored on the same tiles against the same
        reference. The summary gives each source's mean over folds per split and its relative
        change of each score over the manual labels' model."""
        layout = data_store.layout
        table = compared_label_sources(read_evaluation_table(layout))
        if table.empty:  # not a failure: automation runs it after every evaluation
            remove_atomically(layout.comparison)
            context.log.warning("no variant is trained on two label sources: train obia_trained_model (or "
                                "union_trained_model) for the partitions trained_model has, then evaluation_table")
            return MaterializeResult(metadata={"compared": False})
        EvaluationTable.validate(table, lazy=True)  # before publishing, as the evaluation table
        summary = label_source_summary(table)
        samples = scoring_set(layout)
        models = best_fold_models(table, layout)
        config = {"models": sorted(models), "folds": settings.n_folds, "scoring_set": samples.label_source,
                  "reference": samples.reference_source or samples.label_source, "training_set_id": samples.set_id}

        def write(staging: Path, links: MlflowLinks) -> ExperimentReport:
            table.to_parquet(staging / layout.label_source_table.name, index=False)
            table.to_csv(staging / csv_twin(layout.label_source_table.name), index=False)
            return write_comparison_report(
                table, summary, "label_source", "Training labels: manual vs object-oriented vs union (study A, Table 6)",
                "Each variant trained on each label source over the same folds and test split, every model scored on "
                f"the same tiles against the {config['reference']} masks. *_change = (source - manual) / manual.",
                staging, links, config, panel_tiles(samples, models))

        published = publish_report(context, mlflow_tracking, layout.comparison, "label_sources", write,
                                   lambda report: {f"test_f1_change_{r.label_source}_{r.architecture}": float(r.f1_change)
                                                   for r in summary[(summary["split"] == "test")
                                                                    & summary["f1_change"].notna()].itertuples()})
        context.log.info("label sources, scored on the same tiles:\n" + summary.to_string(index=False))
        return MaterializeResult(metadata={**published.metadata(),
                                           "path": MetadataValue.path(str(layout.label_source_table))})

    @asset_check(asset=label_source_comparison, blocking=True,
                 description="pandera EvaluationTable schema of the compared models' rows")
    def label_source_comparison_schema(data_store: DataStore) -> AssetCheckResult:
        if not data_store.layout.label_source_table.is_file():
            return AssetCheckResult(passed=True, metadata={"compared": False})
        table = pd.read_parquet(data_store.layout.label_source_table)
        return schema_failures(EvaluationTable, table) or AssetCheckResult(passed=True, metadata={"rows": len(table)})

    return [fold_ensembles, evaluation_table, evaluation_table_schema, champion_model, label_source_comparison,
            label_source_comparison_schema]
