"""Training: one training set across labelled surveys, one model per architecture x fold."""


import time
from typing import Literal

import pandas as pd
from dagster import (
    AssetExecutionContext, AssetsDefinition, Config, MaterializeResult, MetadataValue, MultiPartitionKey, asset,
)

from landslide_pipeline.defs.partitions import model_partitions, survey_partitions
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.defs.survey_assets import LABEL_INDEX, manual_labels
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.nn import count_parameters, create_model
from landslide_pipeline.schemas import FoldAssignment
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.training.checkpoint import ModelSpec, config_digest, save_model
from landslide_pipeline.training.dataset import LabelledSurvey, TrainingSet, build_training_set
from landslide_pipeline.training.folds import assign_folds
from landslide_pipeline.training.loop import EpochReport, TrainingConfig, pick_device, train_segmentation

# Issue 4 adds object-oriented labels as a second source; until then every model trains on these.
LABEL_SOURCE = "manual"


class TrainingSetConfig(Config):
    """Augmentation and fold assignment; the fold count comes from LANDSLIDE_FOLDS."""

    augment_factor: int = 4
    fold_strategy: Literal["random", "spatial"] = "spatial"
    block_tiles: int = 2
    use_terrain: bool = True
    seed: int = 0


class ModelTrainingConfig(Config):
    """The ``cpu`` profile: a U-Net family model at 1/8 width trains in about a minute a fold."""

    width: float = 0.125
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    step_size: int = 30
    gamma: float = 0.1
    loss: Literal["ce", "weighted_ce"] = "weighted_ce"
    seed: int = 0


def labelled_surveys(layout: DataLayout, survey_ids: list[str]) -> list[LabelledSurvey]:
    """The surveys that have manual label masks, in a stable order."""
    surveys = []
    for survey_id in sorted(survey_ids):
        labels_dir = layout.labels(LABEL_SOURCE, survey_id)
        if (labels_dir / LABEL_INDEX).is_file():
            tiles = pd.read_parquet(labels_dir / LABEL_INDEX).drop(columns="geometry")
            surveys.append(LabelledSurvey(layout.tiles(survey_id), labels_dir / "masks", tiles))
    return surveys


def build_training_assets(settings: PipelineSettings) -> list[AssetsDefinition]:
    """The training set and the model assets, whose partitions depend on the settings."""

    @asset(group_name="training", kinds={"numpy", "parquet"}, deps=[manual_labels], code_version="1")
    def training_set(context: AssetExecutionContext, config: TrainingSetConfig,
                     data_store: DataStore) -> MaterializeResult:
        """Every labelled tile of every survey as arrays, with dihedral copies (flips and quarter
        turns) and a k-fold assignment in spatial blocks; augmented copies keep their tile's fold."""
        layout = data_store.layout
        surveys = labelled_surveys(layout, context.instance.get_dynamic_partitions(survey_partitions.name))
        if not surveys:
            raise ValueError("no survey has manual labels: add landslides.gpkg to a survey and "
                             "materialize its manual_labels first")
        tiles = pd.concat([s.tiles for s in surveys], ignore_index=True)
        block_px = config.block_tiles * int(tiles["height"].max())
        folds = assign_folds(tiles, settings.n_folds, config.seed, config.fold_strategy, block_px)
        FoldAssignment.validate(folds[list(FoldAssignment.to_schema().columns)])
        samples = build_training_set(surveys, folds, config.augment_factor, config.seed, config.use_terrain)
        with atomic_directory(layout.training_set(LABEL_SOURCE)) as staging:
            samples.save(staging)
        per_fold = folds.groupby("fold").agg(tiles=("tile_id", "size"), landslide=("landslide_fraction", "mean"))
        for fold in per_fold.index[per_fold["landslide"] == 0]:
            context.log.warning(f"fold {fold} holds no landslide pixel: its validation F1 will be 0 or undefined")
        return MaterializeResult(metadata={
            "n_tiles": len(folds), "n_samples": len(samples.x), "bands": ", ".join(samples.bands),
            "surveys": ", ".join(s.tiles["survey_id"].iloc[0] for s in surveys),
            "folds": MetadataValue.md(per_fold.to_markdown()),
        })

    @asset(partitions_def=model_partitions(settings), group_name="training", kinds={"pytorch", "mlflow"},
           deps=[training_set], code_version="1")
    def trained_model(context: AssetExecutionContext, config: ModelTrainingConfig, data_store: DataStore,
                      mlflow_tracking: MlflowTracking) -> MaterializeResult:
        """One model per architecture x fold, trained on the other folds, selected on this fold's
        validation F1, logged to MLflow as a child run of its cross-validation."""
        key = context.partition_key
        assert isinstance(key, MultiPartitionKey)
        architecture, fold = key.keys_by_dimension["architecture"], int(key.keys_by_dimension["fold"])
        layout = data_store.layout
        samples = TrainingSet.load(layout.training_set(LABEL_SOURCE))
        train_idx, val_idx = samples.split(fold)
        model = create_model(architecture, samples.x.shape[1], 2, width=config.width)
        training = TrainingConfig(config.epochs, config.batch_size, config.learning_rate, config.step_size,
                                  config.gamma, config.loss, config.seed)
        tags = {"dagster.run_id": context.run_id, "dagster.asset_key": context.asset_key.to_user_string(),
                "dagster.partition": str(key), "architecture": architecture, "fold": str(fold)}
        device = pick_device()
        # Folds of one cross-validation share a parent run: same architecture, training set and config.
        group = f"{architecture}:{samples.set_id}:{config_digest(config.model_dump())}"

        def report(epoch: EpochReport) -> None:
            context.log.info(
                f"{architecture} fold {fold} epoch {epoch.epoch}/{config.epochs}: loss {epoch.train_loss:.4f}, "
                f"val loss {epoch.val_loss:.4f}, val F1 {epoch.val_f1:.3f}, {epoch.images_per_second:.1f} images/s")
            mlflow_tracking.log_epoch(epoch)

        with mlflow_tracking.fold_run(group, f"{architecture} {settings.n_folds}-fold CV",
                                      f"{architecture}-fold{fold}", tags) as run:
            parameters = count_parameters(model)
            mlflow_tracking.log_params({**config.model_dump(), "architecture": architecture, "fold": fold,
                                        "n_train": len(train_idx), "n_val": len(val_idx), "parameters": parameters,
                                        "bands": ",".join(samples.bands), "device": str(device)})
            start = time.perf_counter()
            result = train_segmentation(model, (samples.x[train_idx], samples.y[train_idx]),
                                        (samples.x[val_idx], samples.y[val_idx]), training, device, report)
            mlflow_tracking.log_summary(best_epoch=result.best_epoch, best_val_f1=result.best_val_f1,
                                        train_seconds=time.perf_counter() - start)
            model_uri = mlflow_tracking.log_model(model, samples.x[val_idx[:1]])
        spec = ModelSpec(architecture, samples.x.shape[1], 2, config.width, samples.bands, fold, LABEL_SOURCE,
                         parameters, result.best_epoch, result.seconds, run.info.run_id)
        with atomic_directory(layout.model(architecture, fold)) as staging:
            save_model(staging, model, spec)
        return MaterializeResult(metadata={
            "best_epoch": result.best_epoch, "best_val_f1": result.best_val_f1, "parameters": parameters,
            "train_seconds": round(result.seconds, 1), "mlflow_run_id": run.info.run_id, "model_uri": model_uri,
            "device": str(device),
        })

    return [training_set, trained_model]
