"""Training: one training set across labelled surveys, one model per architecture x fold."""


import json
from dataclasses import asdict
from typing import Literal

import pandas as pd
from dagster import (
    AssetExecutionContext, AssetsDefinition, Config, MaterializeResult, MetadataValue, MultiPartitionKey, asset,
)

from landslide_pipeline.defs.partitions import model_partitions, survey_partitions
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.defs.survey_assets import LABEL_INDEX, manual_labels
from landslide_pipeline.layout import DataLayout
from landslide_pipeline.nn import count_parameters
from landslide_pipeline.schemas import FoldAssignment
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.training.checkpoint import ModelSpec, config_digest, save_model
from landslide_pipeline.training.dataset import LabelledSurvey, TrainingSet, build_training_set
from landslide_pipeline.training.augment import AugmentationSpec
from landslide_pipeline.training.folds import TEST_FOLD, assign_folds
from landslide_pipeline.training.loop import EpochReport, init_model, pick_device, train_segmentation
from landslide_pipeline.training.performance import retain_freed_memory
from landslide_pipeline.training.profiles import TrainingProfile, resolve_profile

# Issue 4 adds object-oriented labels as a second source; until then every model trains on these.
LABEL_SOURCE = "manual"


class TrainingSetConfig(Config):
    """Augmentation, fold assignment and test split; the fold count comes from LANDSLIDE_FOLDS."""

    augment_factor: int = 5
    max_rotation_deg: float = 15.0
    crop_scale_min: float = 0.75
    contrast: float = 0.2
    brightness: float = 0.1
    noise_std: float = 0.02
    fold_strategy: Literal["random", "spatial"] = "spatial"
    block_tiles: int = 2
    test_fraction: float = 0.15  # ignored when a survey has role = "test": its tiles are the test split
    use_terrain: bool = True
    seed: int = 0

    def augmentation(self) -> AugmentationSpec:
        return AugmentationSpec(self.augment_factor, self.max_rotation_deg, (self.crop_scale_min, 1.0),
                                self.contrast, self.brightness, self.noise_std)


class ModelTrainingConfig(Config):
    """A named profile (``cpu``, ``paper-a``, ``paper-b``), any field of which can be overridden."""

    profile: Literal["cpu", "paper-a", "paper-b"] = "cpu"
    width: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    step_size: int | None = None
    gamma: float | None = None
    loss: str | None = None  # ce, weighted_ce, dice or focal
    seed: int | None = None
    precision: str | None = None  # fp32, bf16 or auto (bf16 where the CPU has native bf16)

    def resolve(self) -> TrainingProfile:
        return resolve_profile(self.profile, **self.model_dump(exclude={"profile"}))


def labelled_surveys(layout: DataLayout, survey_ids: list[str]) -> list[LabelledSurvey]:
    """The surveys that have manual label masks, in a stable order."""
    surveys = []
    for survey_id in sorted(survey_ids):
        labels_dir = layout.labels(LABEL_SOURCE, survey_id)
        if (labels_dir / LABEL_INDEX).is_file():
            tiles = pd.read_parquet(labels_dir / LABEL_INDEX).drop(columns="geometry")
            role = json.loads(layout.survey_metadata(survey_id).read_text()).get("role", "train")
            surveys.append(LabelledSurvey(layout.tiles(survey_id), labels_dir / "masks", tiles, role))
    return surveys


def build_training_assets(settings: PipelineSettings) -> list[AssetsDefinition]:
    """The training set and the model assets, whose partitions depend on the settings."""

    @asset(group_name="training", kinds={"numpy", "parquet"}, deps=[manual_labels], code_version="1")
    def training_set(context: AssetExecutionContext, config: TrainingSetConfig,
                     data_store: DataStore) -> MaterializeResult:
        """Every labelled tile of every survey as arrays, a held-out test split and a k-fold
        assignment in spatial blocks, and augmented copies of the fold tiles (flips, rotations,
        crops, contrast, noise) that keep their tile's fold."""
        layout = data_store.layout
        surveys = labelled_surveys(layout, context.instance.get_dynamic_partitions(survey_partitions.name))
        if not surveys:
            raise ValueError("no survey has manual labels: add landslides.gpkg to a survey and "
                             "materialize its manual_labels first")
        tiles = pd.concat([s.tiles for s in surveys], ignore_index=True)
        block_px = config.block_tiles * int(tiles["height"].max())
        test_surveys = tuple(s.tiles["survey_id"].iloc[0] for s in surveys if s.role == "test")
        folds = assign_folds(tiles, settings.n_folds, config.seed, config.fold_strategy, block_px,
                             config.test_fraction, test_surveys)
        FoldAssignment.validate(folds[list(FoldAssignment.to_schema().columns)])
        samples = build_training_set(surveys, folds, config.augmentation(), config.seed, config.use_terrain)
        with atomic_directory(layout.training_set(LABEL_SOURCE)) as staging:
            samples.save(staging)
        per_fold = folds.groupby("fold").agg(tiles=("tile_id", "size"), landslide=("landslide_fraction", "mean"))
        for fold in per_fold.index[per_fold["landslide"] == 0]:
            context.log.warning(f"fold {fold} holds no landslide pixel: its validation F1 will be 0 or undefined")
        return MaterializeResult(metadata={
            "n_tiles": len(folds), "n_samples": len(samples.x), "bands": ", ".join(samples.bands),
            "n_test_tiles": int((folds["fold"] == TEST_FOLD).sum()), "training_set_id": samples.set_id,
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
        profile = config.resolve()
        training = profile.training
        model = init_model(architecture, samples.x.shape[1], profile.width, training.seed)
        run_config = {"profile": config.profile, "width": profile.width, **asdict(training)}
        # Folds of one cross-validation share a parent run: same architecture, training set and config.
        group = f"{architecture}:{samples.set_id}:{config_digest(run_config)}"
        checkpoint = layout.checkpoint(architecture, fold, f"{samples.set_id}-{config_digest(run_config)}")
        tags = {"dagster.run_id": context.run_id, "dagster.asset_key": context.asset_key.to_user_string(),
                "dagster.partition": str(key), "architecture": architecture, "fold": str(fold)}
        device = pick_device()
        if device.type == "cpu":
            retain_freed_memory()  # +10-58 % images/s: large activations stop being re-faulted each step

        def report(epoch: EpochReport) -> None:
            context.log.info(
                f"{architecture} fold {fold} epoch {epoch.epoch}/{training.epochs}: loss {epoch.train_loss:.4f}, "
                f"val loss {epoch.val_loss:.4f}, val F1 {epoch.val_f1:.3f}, {epoch.images_per_second:.1f} images/s")
            mlflow_tracking.log_epoch(epoch)

        with mlflow_tracking.fold_run(group, f"{architecture} {settings.n_folds}-fold CV",
                                      f"{architecture}-fold{fold}", tags) as run:
            parameters = count_parameters(model)
            mlflow_tracking.log_params({**run_config, "architecture": architecture, "fold": fold,
                                        "n_train": len(train_idx), "n_val": len(val_idx), "parameters": parameters,
                                        "bands": ",".join(samples.bands), "device": str(device),
                                        "training_set_id": samples.set_id})
            result = train_segmentation(model, (samples.x[train_idx], samples.y[train_idx]),
                                        (samples.x[val_idx], samples.y[val_idx]), training, device, report,
                                        checkpoint)
            if result.resumed_from_epoch:
                context.log.info(f"resumed from the checkpoint after epoch {result.resumed_from_epoch}")
            mlflow_tracking.log_summary(best_epoch=result.best_epoch, best_val_f1=result.best_val_f1,
                                        train_seconds=result.seconds)
            spec = ModelSpec(architecture, samples.x.shape[1], 2, profile.width, samples.bands, fold, LABEL_SOURCE,
                             parameters, result.best_epoch, result.seconds, run.info.run_id)
            with atomic_directory(layout.model(architecture, fold)) as staging:
                save_model(staging, model, spec)
                model_uri = mlflow_tracking.log_model(model, samples.x[val_idx[:2]], staging)
        checkpoint.unlink(missing_ok=True)
        return MaterializeResult(metadata={
            "best_epoch": result.best_epoch, "best_val_f1": result.best_val_f1, "parameters": parameters,
            "train_seconds": round(result.seconds, 1), "mlflow_run_id": run.info.run_id, "model_uri": model_uri,
            "device": str(device), "profile": config.profile, "resumed_from_epoch": result.resumed_from_epoch,
        })

    return [training_set, trained_model]
