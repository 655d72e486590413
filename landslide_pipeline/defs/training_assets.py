"""Training: one training set across labelled surveys, one model per architecture x fold."""


from pathlib import Path
from typing import Literal

import pandas as pd
from dagster import (
    AssetExecutionContext, AssetsDefinition, Config, MaterializeResult, MetadataValue, MultiPartitionKey, asset,
)
from pydantic import Field

from landslide_pipeline.defs.partitions import model_partitions, survey_partitions
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.defs.labelling_assets import obia_labels
from landslide_pipeline.defs.survey_assets import manual_labels
from landslide_pipeline.schemas import FoldAssignment
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory
from landslide_pipeline.training.checkpoint import config_digest
from landslide_pipeline.training.dataset import (
    FOLDS, LabelledSurvey, Reference, TrainingSet, build_training_set, labelled_surveys,
)
from landslide_pipeline.training.fold_models import fold_data, train_fold_model
from landslide_pipeline.training.folds import TEST_FOLD, assign_folds, inherit_folds
from landslide_pipeline.training.loop import EpochReport, pick_device
from landslide_pipeline.training.performance import retain_freed_memory
from landslide_pipeline.training.profiles import TrainingProfile, resolve_profile

#: Label sources a training set can be built from, and the asset-name prefix of each chain.
MANUAL, OBIA = "manual", "obia"
ASSET_PREFIX = {MANUAL: "", OBIA: "obia_"}


class TrainingSetConfig(Config):
    """Fold assignment and test split; the fold count comes from LANDSLIDE_FOLDS. (Augmentation is
    drawn online while training: see the model training config.)"""

    fold_strategy: Literal["random", "spatial"] = "spatial"
    block_tiles: int = 2
    test_fraction: float = 0.15  # ignored when a survey has role = "test": its tiles are the test split
    use_terrain: bool = True
    seed: int = 0


class ModelTrainingConfig(Config):
    """A named profile (``cpu``, ``paper-a``, ``paper-b``), any field of which can be overridden."""

    profile: Literal["cpu", "paper-a", "paper-b"] = "cpu"
    width: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    optimizer: str | None = Field(None, description="adam or adamw")
    weight_decay: float | None = None
    schedule: str | None = Field(
        None, description="step: lr x gamma every step_size epochs; cosine: warm-up, then a half cosine")
    warmup_epochs: float | None = None
    step_size: int | None = None
    gamma: float | None = None
    loss: str | None = None  # a name in training.losses.LOSSES
    seed: int | None = None
    precision: str | None = None  # fp32, bf16 or auto (bf16 where the CPU has native bf16)
    draws: int | None = Field(None, description="Fresh augmented variants of each tile per epoch (study B: 5).")
    geometric_p: float | None = None
    max_rotation_deg: float | None = None
    crop_scale: list[float] | None = None
    photometric_p: float | None = None
    contrast: float | None = None
    brightness: float | None = None
    noise_std: float | None = None

    def resolve(self) -> TrainingProfile:
        return resolve_profile(self.profile, **self.model_dump(exclude={"profile"}))


def fold_table(surveys: list[LabelledSurvey], config: TrainingSetConfig, n_folds: int,
               inherit_from: Path | None) -> pd.DataFrame:
    """The folds of the surveys' tiles: inherited from another label source's training set when
    ``inherit_from`` holds one (same folds and test split on the tiles they share), else assigned."""
    tiles = pd.concat([s.tiles for s in surveys], ignore_index=True)
    if inherit_from is not None and (inherit_from / FOLDS).is_file():
        return inherit_folds(tiles, pd.read_parquet(inherit_from / FOLDS))
    test_surveys = tuple(s.tiles["survey_id"].iloc[0] for s in surveys if s.role == "test")
    block_px = config.block_tiles * int(tiles["height"].max())
    return assign_folds(tiles, n_folds, config.seed, config.fold_strategy, block_px, config.test_fraction, test_surveys)


def training_set_asset(settings: PipelineSettings, source: str) -> AssetsDefinition:
    """The training set of one label source. The object-oriented one inherits the manual set's
    folds and test split and keeps the manual masks as its scoring reference, when they exist."""
    upstream = manual_labels if source == MANUAL else obia_labels
    deps = [upstream] if source == MANUAL else [upstream, f"{ASSET_PREFIX[MANUAL]}training_set"]

    @asset(name=f"{ASSET_PREFIX[source]}training_set", group_name="training", kinds={"numpy", "parquet"},
           deps=deps, code_version="3")
    def _training_set(context: AssetExecutionContext, config: TrainingSetConfig,
                      data_store: DataStore) -> MaterializeResult:
        layout = data_store.layout
        survey_ids = context.instance.get_dynamic_partitions(survey_partitions.name)
        surveys = labelled_surveys(layout, survey_ids, source)
        if not surveys:
            raise ValueError(f"no survey has {source} labels: materialize {upstream.key.to_user_string()} "
                             "of a survey first" + (" (add landslides.gpkg to it)" if source == MANUAL else ""))
        manual_set = layout.training_set(MANUAL) if source != MANUAL else None
        folds = fold_table(surveys, config, settings.n_folds, manual_set)
        FoldAssignment.validate(folds[list(FoldAssignment.to_schema().columns)])
        reference = None
        if manual_set is not None and (manual_set / FOLDS).is_file():
            reference = Reference(MANUAL, {s: layout.labels(MANUAL, s) / "masks" for s in folds["survey_id"].unique()})
            context.log.info(f"{len(folds)} tiles inherit the manual training set's folds; scored against manual masks")
        with atomic_directory(layout.training_set(source)) as staging:
            samples = build_training_set(surveys, folds, config.use_terrain, staging, reference, source)
        per_fold = folds.groupby("fold").agg(tiles=("tile_id", "size"), landslide=("landslide_fraction", "mean"))
        for fold in per_fold.index[per_fold["landslide"] == 0]:
            context.log.warning(f"fold {fold} holds no landslide pixel: its validation F1 will be 0 or undefined")
        return MaterializeResult(metadata={
            "label_source": source, "reference": reference.source if reference else source,
            "n_tiles": len(folds), "bands": ", ".join(samples.bands), "image_scaling": samples.image_scaling,
            "n_test_tiles": int((folds["fold"] == TEST_FOLD).sum()), "training_set_id": samples.set_id,
            "surveys": ", ".join(s.tiles["survey_id"].iloc[0] for s in surveys),
            "folds": MetadataValue.md(per_fold.to_markdown()),
        })

    _training_set.__doc__ = (
        f"Every tile with {source} labels of every survey, stored once as arrays read tile by tile, a "
        "held-out test split and a k-fold assignment in spatial blocks (augmentation is drawn afresh "
        "every epoch while training)."
        + ("" if source == MANUAL else " It inherits the manual training set's folds and test split when "
           "there is one, and keeps the manual masks to score against."))
    return _training_set


def trained_model_asset(settings: PipelineSettings, source: str, training_set: AssetsDefinition) -> AssetsDefinition:
    """One model per architecture x fold, trained on one label source's training set."""

    @asset(name=f"{ASSET_PREFIX[source]}trained_model", partitions_def=model_partitions(settings),
           group_name="training", kinds={"pytorch", "mlflow"}, deps=[training_set], code_version="3",
           description=f"One model per architecture x fold, trained on the other folds of the {source}-label "
                       "training set (fresh augmented variants every epoch, bands normalised with the training folds' "
                       "statistics), selected on this fold's calibrated validation F1, with its decision threshold, "
                       "logged to MLflow as a child run of its cross-validation.")
    def _trained_model(context: AssetExecutionContext, config: ModelTrainingConfig, data_store: DataStore,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
        key = context.partition_key
        assert isinstance(key, MultiPartitionKey)
        architecture, fold = key.keys_by_dimension["architecture"], int(key.keys_by_dimension["fold"])
        layout = data_store.layout
        samples = TrainingSet.load(layout.training_set(source))
        data, profile = fold_data(samples, fold), config.resolve()
        run_config = {"profile": config.profile, "width": profile.width, **profile.training.to_dict()}
        # Folds of one cross-validation share a parent run: same architecture, training set and config.
        group = f"{source}:{architecture}:{samples.set_id}:{config_digest(run_config)}"
        checkpoint = layout.checkpoint(source, architecture, fold, f"{samples.set_id}-{config_digest(run_config)}")
        tags = {"dagster.run_id": context.run.run_id, "dagster.asset_key": context.asset_key.to_user_string(),
                "dagster.partition": str(key), "architecture": architecture, "fold": str(fold),
                "label_source": source}
        device = pick_device()
        if device.type == "cpu":
            retain_freed_memory()  # +10-58 % images/s: large activations stop being re-faulted each step

        def report(epoch: EpochReport) -> None:
            context.log.info(
                f"{architecture} fold {fold} epoch {epoch.epoch}/{profile.training.epochs}: loss "
                f"{epoch.train_loss:.4f}, val loss {epoch.val_loss:.4f}, val F1 {epoch.val_f1:.3f} (arg-max), "
                f"{epoch.val_f1_calibrated:.3f} at {epoch.val_threshold:.3f}, {epoch.images_per_second:.1f} images/s")
            mlflow_tracking.log_epoch(epoch)

        with mlflow_tracking.fold_run(group, f"{architecture} {settings.n_folds}-fold CV ({source} labels)",
                                      f"{architecture}-fold{fold}-{source}", tags) as run:
            mlflow_tracking.log_params({**run_config, "architecture": architecture, "fold": fold,
                                        "n_train": len(data.train), "n_val": len(data.val),
                                        "bands": ",".join(samples.bands), "image_scaling": samples.image_scaling,
                                        "device": str(device), "training_set_id": samples.set_id,
                                        "label_source": source})
            trained = train_fold_model(samples, architecture, fold, profile, device, report, checkpoint,
                                       run.info.run_id)
            result, spec = trained.result, trained.spec
            if result.resumed_from_epoch:
                context.log.info(f"resumed from the checkpoint after epoch {result.resumed_from_epoch}")
            mlflow_tracking.log_summary(best_epoch=result.best_epoch, best_val_f1=result.best_val_f1,
                                        threshold=result.threshold, train_seconds=result.seconds,
                                        parameters=spec.parameters)
            with atomic_directory(layout.model(source, architecture, fold)) as staging:
                trained.save(staging)
                model_uri = mlflow_tracking.log_model(trained.model, spec, samples.images[data.val[:2]], staging)
        checkpoint.unlink(missing_ok=True)
        return MaterializeResult(metadata={
            "best_epoch": result.best_epoch, "best_val_f1": result.best_val_f1, "threshold": result.threshold,
            "val_f1_argmax": result.history[result.best_epoch - 1].val_f1, "parameters": spec.parameters,
            "normalization_mean": str([round(m, 4) for m in spec.members[0].mean]),
            "normalization_std": str([round(m, 4) for m in spec.members[0].std]),
            "train_seconds": round(result.seconds, 1), "mlflow_run_id": run.info.run_id, "model_uri": model_uri,
            "device": str(device), "profile": config.profile, "resumed_from_epoch": result.resumed_from_epoch,
            "label_source": source,
        })

    return _trained_model


def build_training_assets(settings: PipelineSettings, source: str = MANUAL) -> list[AssetsDefinition]:
    """The training set and the model assets of one label source (``training_set`` and
    ``trained_model`` for manual labels, ``obia_training_set`` and ``obia_trained_model`` for
    object-oriented ones); the model partitions depend on the settings."""
    training_set = training_set_asset(settings, source)
    return [training_set, trained_model_asset(settings, source, training_set)]
