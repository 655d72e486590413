"""Experiment reports: tables, plots, panels and a Markdown page per experiment, logged to MLflow."""


from pathlib import Path

import pandas as pd
from dagster import AssetCheckResult, AssetExecutionContext, AssetsDefinition, MaterializeResult, asset, asset_check

from landslide_pipeline.defs.automation_conditions import after_upstream_settles
from landslide_pipeline.defs.checks import schema_failures
from landslide_pipeline.defs.concurrency import CPU_POOL, heavy_step_tags
from landslide_pipeline.defs.publish import publish_report
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.layout import ARCHITECTURES_REPORT, REPORT_SUMMARY
from landslide_pipeline.reports.experiments import ExperimentReport, write_architecture_report
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.reports.panels import class_panels, panel_tiles
from landslide_pipeline.schemas import ArchitectureSummary
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.training.evaluate import best_fold, score_breakdown, scoring_set


def build_report_assets(settings: PipelineSettings) -> list[AssetsDefinition]:
    """The architecture comparison report (the label-source one is written by its asset)."""

    @asset(group_name="evaluation", kinds={"matplotlib", "markdown", "mlflow"}, deps=["evaluation_table"],
           code_version="1", pool=CPU_POOL, op_tags=heavy_step_tags(), automation_condition=after_upstream_settles(blocking_checks=True))
    def architecture_comparison(context: AssetExecutionContext, data_store: DataStore,
                                mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """FCN / U-Net / Res-U-Net / LinkNet and their input sets (whichever have been trained and
        scored) side by side, for the scoring set's label source (manual labels when there are
        any): scores per split (mean and std over folds), parameter count and training time per
        fold, scores by landslide size and background complexity with example tiles of each class
        (study B, Figs. 10-12), a panel of test tiles predicted by each variant's best fold model,
        as a Markdown report in ``data/reports/architectures/`` and an MLflow run."""
        layout = data_store.layout
        samples = scoring_set(layout)
        evaluated = pd.read_parquet(layout.evaluation_table)
        table = evaluated[evaluated["label_source"] == samples.label_source]
        architectures = list(dict.fromkeys(table["architecture"]))  # what evaluation_table scored
        models = {a: layout.model(samples.label_source, a, best_fold(table, a)) for a in architectures}
        config = {"architectures": architectures, "folds": settings.n_folds, "label_source": samples.label_source,
                  "bands": samples.bands, "training_set_id": samples.set_id}

        def write(staging: Path, links: MlflowLinks) -> ExperimentReport:
            breakdown = score_breakdown(samples, models)
            examples = class_panels(breakdown.images, breakdown.reference, breakdown.predictions, breakdown.examples,
                                    staging, breakdown.titles)
            return write_architecture_report(table, staging, links, config, panel_tiles(samples, models),
                                             (breakdown.sizes, breakdown.backgrounds), examples)

        published = publish_report(
            context, mlflow_tracking, layout.report(ARCHITECTURES_REPORT), ARCHITECTURES_REPORT, write,
            lambda report: {f"test_f1_{r.architecture}": float(r.f1_mean)
                            for r in report.summary[report.summary["split"] == "test"].itertuples()})
        return MaterializeResult(metadata=published.metadata())

    @asset_check(asset=architecture_comparison, blocking=True,
                 description="pandera ArchitectureSummary: fold means in range, one row per architecture x split")
    def architecture_comparison_schema(data_store: DataStore) -> AssetCheckResult:
        summary = pd.read_csv(data_store.layout.report(ARCHITECTURES_REPORT) / REPORT_SUMMARY)
        if (failed := schema_failures(ArchitectureSummary, summary)) is not None:
            return failed
        evaluated = pd.read_parquet(data_store.layout.evaluation_table)
        scored = evaluated.loc[evaluated["label_source"] == scoring_set(data_store.layout).label_source, "architecture"]
        missing = set(scored) - set(summary["architecture"])
        return AssetCheckResult(passed=not missing, metadata={"missing": ", ".join(sorted(missing)) or "none"})

    return [architecture_comparison, architecture_comparison_schema]

