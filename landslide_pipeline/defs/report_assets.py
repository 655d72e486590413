"""Experiment reports: tables, plots, panels and a Markdown page per experiment, logged to MLflow."""

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue,
    asset, asset_check,
)

from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.defs.training_assets import MANUAL
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.reports.experiments import (
    REPORT, ExperimentReport, PanelTiles, markdown_image, write_architecture_report,
)
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.reports.panels import pick_panel_tiles
from landslide_pipeline.schemas import ArchitectureSummary
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.evaluate import best_fold, predict_with_saved_model

PANEL_TILES = 4


def panel_tiles(layout: DataLayout, samples: TrainingSet, models: Mapping[str, Path], seed: int = 0) -> PanelTiles:
    """A few held-out test tiles (validation tiles of fold 0 without a test split), their
    reference masks and each named model's predictions."""
    pool = samples.test_indices()
    if len(pool) == 0:
        pool = samples.split(0)[1]
    reference_all = samples.scoring_masks(pool)
    chosen = pick_panel_tiles(reference_all, min(PANEL_TILES, len(pool)), seed)
    idx = pool[chosen]
    images = samples.images[idx]
    predictions = {name: predict_with_saved_model(path, images) for name, path in models.items()}
    titles = [str(samples.tiles["tile_id"].iloc[i]) for i in idx]
    return PanelTiles(images, reference_all[chosen], predictions, titles)


def report_metadata(report: ExperimentReport, run_id: str) -> dict:
    """The report's plots inline, its summary and where it lies."""
    return {
        "summary": MetadataValue.md(report.summary.to_markdown(index=False, floatfmt=".3f")),
        "plots": MetadataValue.md("\n\n".join(markdown_image(p, p.stem) for p in report.plots)),
        "report": MetadataValue.path(str(report.markdown)), "mlflow_run_id": run_id,
    }


def build_report_assets(settings: PipelineSettings) -> list[AssetsDefinition]:
    """The architecture comparison report (the label-source one is written by its asset)."""

    @asset(group_name="evaluation", kinds={"matplotlib", "markdown", "mlflow"}, deps=["evaluation_table"],
           code_version="1")
    def architecture_comparison(context: AssetExecutionContext, data_store: DataStore,
                                mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """FCN / U-Net / Res-U-Net / LinkNet (whichever are configured) side by side: scores per split
        (mean and std over folds), parameter count and training time per fold, a panel of test tiles
        predicted by each architecture's best fold model, as a Markdown report in
        ``data/reports/architectures/`` and an MLflow run."""
        layout = data_store.layout
        table = pd.read_parquet(layout.evaluation / "evaluation.parquet")
        samples = TrainingSet.load(layout.training_set(MANUAL))
        models = {a: layout.model(MANUAL, a, best_fold(table, a)) for a in settings.architectures}
        links = MlflowLinks(mlflow_tracking.resolved_tracking_uri(), mlflow_tracking.experiment_id())
        config = {"architectures": list(settings.architectures), "folds": settings.n_folds,
                  "bands": samples.bands, "training_set_id": samples.set_id}
        with atomic_directory(layout.reports / "architectures") as staging:
            report = write_architecture_report(table, staging, links, config, panel_tiles(layout, samples, models))
            test = report.summary[report.summary["split"] == "test"]
            metrics = {f"test_f1_{row.architecture}": float(row.f1_mean) for row in test.itertuples()}
            run_id = mlflow_tracking.log_report("architecture comparison", staging, metrics,
                                                {"dagster.run_id": context.run.run_id, "landslide.report": "architectures"})
        report = ExperimentReport(layout.reports / "architectures" / REPORT,
                                  [layout.reports / "architectures" / p.name for p in report.plots], report.summary)
        return MaterializeResult(metadata=report_metadata(report, run_id))

    @asset_check(asset=architecture_comparison, blocking=True,
                 description="pandera ArchitectureSummary: fold means in range, one row per architecture x split")
    def architecture_comparison_schema(data_store: DataStore) -> AssetCheckResult:
        summary = pd.read_csv(data_store.layout.reports / "architectures" / "summary.csv")
        try:
            ArchitectureSummary.validate(summary, lazy=True)
        except pa.errors.SchemaErrors as err:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, metadata={
                "failures": MetadataValue.md(err.failure_cases.head(50).to_markdown(index=False))})
        missing = set(settings.architectures) - set(summary["architecture"])
        return AssetCheckResult(passed=not missing, metadata={"missing": ", ".join(sorted(missing)) or "none"})

    return [architecture_comparison, architecture_comparison_schema]

