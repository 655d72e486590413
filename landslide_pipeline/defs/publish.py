"""The one way an experiment report is published: written atomically, logged to MLflow as a run of
its own, and shown in the asset's metadata."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster import AssetExecutionContext, MetadataValue

from landslide_pipeline.defs.resources import MlflowTracking
from landslide_pipeline.layout import REPORT
from landslide_pipeline.reports.experiments import ExperimentReport, markdown_image
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.storage import atomic_directory


@dataclass(frozen=True)
class Published:
    """A report in its final folder, its headline metrics and the MLflow run that holds it."""

    report: ExperimentReport
    metrics: dict[str, float]
    run_id: str

    def metadata(self) -> dict:
        """The report's plots inline, its summary, its headline metrics and where it lies."""
        return {
            "summary": MetadataValue.md(self.report.summary.to_markdown(index=False, floatfmt=".3f")),
            "plots": MetadataValue.md("\n\n".join(markdown_image(p, p.stem) for p in self.report.plots)),
            "report": MetadataValue.path(str(self.report.markdown)), "mlflow_run_id": self.run_id, **self.metrics,
        }


def publish_report(context: AssetExecutionContext, mlflow_tracking: MlflowTracking, folder: Path, kind: str,
                   write: Callable[[Path, MlflowLinks], ExperimentReport],
                   headline: Callable[[ExperimentReport], dict[str, float]]) -> Published:
    """Writes a report into ``folder`` (replacing it only once complete) and logs it to MLflow.

    Args:
        context: The asset's context (its run id tags the MLflow run).
        mlflow_tracking: Where to log.
        folder: The report's folder.
        kind: Its name, the MLflow tag ``landslide.report`` and (with spaces) the run's name.
        write: Writes tables, plots and the Markdown page into a staging folder, given links to MLflow.
        headline: The report's headline figures, logged as the run's metrics.
    """
    links = MlflowLinks(mlflow_tracking.resolved_tracking_uri(), mlflow_tracking.experiment_id())
    with atomic_directory(folder) as staging:
        report = write(staging, links)
        metrics = headline(report)
        run_id = mlflow_tracking.log_report(kind.replace("_", " "), staging, metrics,
                                            {"dagster.run_id": context.run.run_id, "landslide.report": kind})
    moved = ExperimentReport(folder / REPORT, [folder / p.name for p in report.plots], report.summary)
    return Published(moved, metrics, run_id)
