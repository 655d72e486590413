"""The studies' experiments on the manual training set: input bands (study A, Table 7) and
training-set size (study B). Each trains its own variant x architecture x fold models in one run
(they are experiments, not models to deploy), writes a table, plots and a Markdown report, logs
the report to MLflow, and is validated by a blocking pandera check."""

from collections.abc import Callable
from pathlib import Path

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

from landslide_pipeline.defs.automation_conditions import in_retraining_window
from landslide_pipeline.defs.checks import schema_failures
from landslide_pipeline.defs.concurrency import CPU_POOL, heavy_step_tags
from landslide_pipeline.defs.publish import publish_report
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.layout import EXPERIMENT_TABLE, LabelSource, csv_twin
from landslide_pipeline.reports.experiments import (
    ExperimentReport,
    variant_summary,
    write_comparison_report,
    write_training_size_report,
)
from landslide_pipeline.reports.markdown import MlflowLinks
from landslide_pipeline.schemas import ExperimentTable
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.experiments import (
    Variant,
    band_variants,
    run_variant_experiment,
    size_study_bands,
    size_variants,
)
from landslide_pipeline.training.loop import pick_device
from landslide_pipeline.training.profiles import ProfileName, resolve_profile


class ExperimentConfig(Config):
    """The training profile of the experiment's models (any field overridable), and for the size
    study the sizes to compare."""

    profile: ProfileName = Field("cpu", description="Training profile of the models.")
    width: float | None = Field(None, description="Channel multiplier (default: the profile's).")
    epochs: int | None = Field(None, description="Epochs per model (default: the profile's).")
    batch_size: int | None = Field(None, description="Tiles per optimiser step (default: the profile's).")
    loss: str | None = Field(None, description="ce, weighted_ce, dice, focal or ce_dice (default: the profile's).")
    sizes: list[int] = Field([100, 200, 300, 400], description="Training-set sizes in original tiles (size study).")
    architectures: list[str] = Field(["unet", "linknet"], description="Architectures to compare (study B's pair by "
                                                                      "default; any registry names).")
    band_sets: dict[str, list[str]] | None = Field(
        None, description="Band study: named band subsets to compare, e.g. {'rgb': ['band_4', 'band_3', 'band_2'], "
                          "'rgb+terrain': [..., 'band_13', 'band_14']}; default: every input set the training "
                          "set's bands allow (rgb, rgb-dem, rgb-slope, rgb-terrain).")


def _run(context: AssetExecutionContext, config: ExperimentConfig, settings: PipelineSettings, samples: TrainingSet,
         variants: list[Variant]) -> pd.DataFrame:
    profile = resolve_profile(config.profile, width=config.width, epochs=config.epochs, batch_size=config.batch_size,
                              loss=config.loss)
    total = len(variants) * len(config.architectures) * settings.n_folds
    done: list[int] = []

    def on_model(variant: Variant, architecture: str, fold: int) -> None:
        done.append(1)
        context.log.info(f"model {len(done)}/{total}: {variant.name}, {architecture}, fold {fold}")

    rows = run_variant_experiment(samples, variants, config.architectures, settings.n_folds, profile.width,
                                  profile.training, pick_device(), on_model)
    return pd.DataFrame(rows)


def _headline(report: ExperimentReport) -> dict[str, float]:
    """Each variant x architecture's mean test F1."""
    test = report.summary[report.summary["split"] == "test"]
    return {f"test_f1_{r.variant}_{r.architecture}".replace(" ", "_").replace("+", "_"): float(r.f1_mean)
            for r in test.itertuples()}


def _experiment_asset(settings: PipelineSettings, name: str, description: str,
                      variants: Callable[[TrainingSet, ExperimentConfig], list[Variant]],
                      write: Callable[[pd.DataFrame, Path, MlflowLinks, dict], ExperimentReport]) -> AssetsDefinition:
    @asset(name=name, group_name="experiments", kinds={"pytorch", "matplotlib", "mlflow"}, deps=["training_set"],
           code_version="1", description=description, pool=CPU_POOL, op_tags=heavy_step_tags(gpu=True),
           automation_condition=in_retraining_window(settings.experiments_cron))
    def _experiment(context: AssetExecutionContext, config: ExperimentConfig, data_store: DataStore,
                    mlflow_tracking: MlflowTracking) -> MaterializeResult:
        layout = data_store.layout
        samples = TrainingSet.load(layout.training_set(LabelSource.MANUAL))
        table = _run(context, config, settings, samples, variants(samples, config))
        run_config = {**config.model_dump(exclude_none=True), "folds": settings.n_folds,
                      "training_set_id": samples.set_id}

        def write_all(staging: Path, links: MlflowLinks) -> ExperimentReport:
            table.to_parquet(staging / EXPERIMENT_TABLE, index=False)
            table.to_csv(staging / csv_twin(EXPERIMENT_TABLE), index=False)
            return write(table, staging, links, run_config)

        published = publish_report(context, mlflow_tracking, layout.report(name), name, write_all, _headline)
        return MaterializeResult(metadata={**published.metadata(), "n_models": len(table) // 2,
                                           "path": MetadataValue.path(str(layout.report(name) / EXPERIMENT_TABLE))})

    return _experiment


def _schema_check(asset_def: AssetsDefinition, name: str) -> AssetChecksDefinition:
    @asset_check(asset=asset_def, name=f"{name}_schema", blocking=True,
                 description="pandera ExperimentTable: scores in range, unique keys, every fold of every variant")
    def _check(data_store: DataStore) -> AssetCheckResult:
        table = pd.read_parquet(data_store.layout.report(name) / EXPERIMENT_TABLE)
        return schema_failures(ExperimentTable, table) or AssetCheckResult(passed=True, metadata={"rows": len(table)})

    return _check


def _bands(samples: TrainingSet, config: ExperimentConfig) -> list[Variant]:
    if config.band_sets:
        unknown = sorted({b for bands in config.band_sets.values() for b in bands} - set(samples.bands))
        if unknown:
            raise ValueError(f"band_sets name bands {unknown} that the training set lacks; it has {samples.bands}")
        return [Variant(name, tuple(bands)) for name, bands in config.band_sets.items()]
    variants = band_variants(samples.bands)
    if len(variants) < 2:
        raise ValueError("the training set has no terrain band to compare: build training_set with "
                         "use_terrain=true from surveys that have a DEM, or name band_sets")
    return variants


def _band_report(table: pd.DataFrame, directory: Path, links: MlflowLinks, config: dict) -> ExperimentReport:
    return write_comparison_report(
        table, variant_summary(table), "bands", "Input bands: RGB vs RGB + DEM, slope, terrain (study A, Table 7)",
        "The same architectures, folds and training, on each input set: the image alone (rgb), with the elevation "
        "centred per tile (rgb-dem), with the slope (rgb-slope), with every terrain band (rgb-terrain).",
        directory, links, config)


def build_experiment_assets(settings: PipelineSettings) -> list[AssetsDefinition | AssetChecksDefinition]:
    """``band_comparison`` and ``training_size_study``, each with its blocking schema check."""
    bands = _experiment_asset(
        settings, "band_comparison",
        "Study A, Table 7: every architecture x fold trained on each input set the training set allows (rgb, "
        "rgb-dem, rgb-slope, rgb-terrain), scored on validation and test tiles; table, plots and report in data/reports/band_comparison/.",
        _bands, _band_report)
    sizes = _experiment_asset(
        settings, "training_size_study",
        "Study B's training-set size study: every architecture x fold trained on at most N original tiles "
        "(config sizes, default 100/200/300/400); table, F1-vs-size plot and report in "
        "data/reports/training_size_study/.",
        lambda samples, config: size_variants(size_study_bands(samples.bands), config.sizes),
        write_training_size_report)
    return [bands, _schema_check(bands, "band_comparison"), sizes, _schema_check(sizes, "training_size_study")]
