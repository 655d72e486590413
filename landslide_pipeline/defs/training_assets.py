"""Training: one training set across labelled surveys, one model per architecture x fold."""


from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    MultiPartitionKey,
    asset,
)
from pydantic import Field

from landslide_pipeline.defs.automation_conditions import in_retraining_window, retrain_trained
from landslide_pipeline.defs.concurrency import CPU_POOL, claim_cores, heavy_step_tags
from landslide_pipeline.defs.partitions import SURVEY_PARTITIONS, model_partitions
from landslide_pipeline.defs.resources import DataStore, MlflowTracking
from landslide_pipeline.layout import MODEL_WEIGHTS, LabelSource
from landslide_pipeline.settings import PipelineSettings
from landslide_pipeline.storage import atomic_directory, fingerprint, remove_atomically
from landslide_pipeline.training.dataset import TrainingSet, training_set_files
from landslide_pipeline.training.fold_models import FoldRun, train_fold
from landslide_pipeline.training.folds import TEST_FOLD
from landslide_pipeline.training.inputs import ModelVariant
from landslide_pipeline.training.loop import EpochReport, pick_device
from landslide_pipeline.training.performance import retain_freed_memory
from landslide_pipeline.training.preparation import FoldOptions, has_labels, prepare_training_set
from landslide_pipeline.training.profiles import ProfileName, TrainingProfile, resolve_profile


class TrainingSetConfig(Config):
    """Fold assignment and test split; the fold count comes from LANDSLIDE_FOLDS. (Augmentation is
    drawn online while training: see the model training config.)"""

    fold_strategy: Literal["random", "spatial"] = Field(
        "spatial", description="spatial: blocks of neighbouring tiles share a fold; random: tile by tile.")
    block_tiles: int = Field(2, description="Side of a spatial block, in tiles.")
    test_fraction: float = Field(0.15, description="Share of the blocks held out as the test split; ignored when a "
                                                   "survey has role = \"test\" (its tiles are the test split).")
    use_terrain: bool = Field(True, description="Add the terrain bands of the surveys' DEMs (elevation, slope, and "
                                                "hillshade/relief where survey.toml asks), for models whose input "
                                                "set takes them; every survey then needs a DEM.")
    seed: int = Field(0, description="Seed of the fold assignment and the test split.")

    def fold_options(self, n_folds: int) -> FoldOptions:
        """The fold assignment this config asks for."""
        return FoldOptions(n_folds, self.fold_strategy, self.block_tiles, self.test_fraction, self.seed)


class ModelTrainingConfig(Config):
    """A named profile (``cpu``, ``paper-a``, ``paper-b``), any field of which can be overridden."""

    profile: ProfileName = Field(
        "cpu", description="cpu: chosen by measurement for 2 cores; paper-a, paper-b: the studies' settings.")
    width: float | None = Field(None, description="Channel multiplier of the architecture (1.0: as published).")
    epochs: int | None = Field(None, description="Epochs; the best validation epoch is kept.")
    batch_size: int | None = Field(None, description="Tiles per optimiser step.")
    learning_rate: float | None = Field(None, description="Peak learning rate.")
    # Dagster config cannot express an optional Literal: these overrides are plain strings that
    # resolve_profile checks against the domain's Literal types (an unknown value fails the run).
    optimizer: str | None = Field(None, description="adam or adamw.")
    weight_decay: float | None = Field(None, description="Weight decay (decoupled with adamw).")
    schedule: str | None = Field(
        None, description="step: lr x gamma every step_size epochs; cosine: warm-up, then a half cosine.")
    warmup_epochs: float | None = Field(None, description="Linear warm-up of the cosine schedule, in epochs.")
    step_size: int | None = Field(None, description="Epochs between learning-rate steps of the step schedule.")
    gamma: float | None = Field(None, description="Factor of each learning-rate step.")
    loss: str | None = Field(None, description="ce, weighted_ce, dice, focal or ce_dice.")
    seed: int | None = Field(None, description="Seed of the initial weights, the shuffling and the augmentation.")
    precision: str | None = Field(None, description="fp32, bf16 or auto (bf16 where the CPU has native bf16).")
    draws: int | None = Field(None, description="Fresh augmented variants of each tile per epoch (study B's x5: 5).")
    geometric_p: float | None = Field(None, description="Share of draws rotated and crop-resized.")
    max_rotation_deg: float | None = Field(None, description="Largest rotation of a draw, in degrees.")
    crop_scale: list[float] | None = Field(None, description="Range of the crop side, as a share of the tile side.")
    photometric_p: float | None = Field(None, description="Share of draws with contrast, brightness and noise.")
    contrast: float | None = Field(None, description="Contrast factor drawn from [1 - contrast, 1 + contrast].")
    brightness: float | None = Field(None, description="Brightness offset bound, in band standard deviations.")
    noise_std: float | None = Field(None, description="Gaussian noise, in band standard deviations.")

    def resolve(self) -> TrainingProfile:
        """The profile with this config's overrides."""
        return resolve_profile(self.profile, **self.model_dump(exclude={"profile"}))


#: The label assets each source's training set is made from.
LABEL_ASSETS = {LabelSource.MANUAL: ["manual_labels"], LabelSource.OBIA: ["obia_labels"],
                LabelSource.UNION: ["manual_labels", "obia_labels"]}


def training_set_asset(settings: PipelineSettings, source: str) -> AssetsDefinition:
    """The training set of one label source. The object-oriented and union ones inherit the
    manual set's folds and test split on the tiles they share (``training.preparation``)."""
    deps = LABEL_ASSETS[source] + ([] if source == LabelSource.MANUAL else ["training_set"])

    @asset(name=f"{LabelSource.asset_prefix(source)}training_set", group_name="training", kinds={"numpy", "parquet"},
           deps=deps, code_version="4", automation_condition=in_retraining_window(settings.retrain_cron))
    def _training_set(context: AssetExecutionContext, config: TrainingSetConfig,
                      data_store: DataStore) -> MaterializeResult:
        layout = data_store.layout
        survey_ids = context.instance.get_dynamic_partitions(SURVEY_PARTITIONS)
        if source == LabelSource.MANUAL and not has_labels(layout, survey_ids, source):
            # Not a failure: a mine without hand-drawn polygons trains on object-oriented labels.
            remove_atomically(layout.training_set(source))
            context.log.warning("no survey has manual labels: no manual training set; the object-oriented chain "
                                "(obia_training_set, obia_trained_model) trains without it")
            return MaterializeResult(metadata={"label_source": source, "n_tiles": 0})
        with atomic_directory(layout.training_set(source)) as staging:
            prepared = prepare_training_set(layout, survey_ids, source, config.fold_options(settings.n_folds),
                                            config.use_terrain, staging)
            version = DataVersion(fingerprint(training_set_files(staging)))
        samples, per_fold = prepared.samples, prepared.fold_summary()
        if prepared.reference is not None:
            context.log.info(f"{len(samples.tiles)} tiles, all with manual masks: they keep them as a reference")
        for fold in per_fold.index[per_fold["landslide"] == 0]:
            context.log.warning(f"fold {fold} holds no landslide pixel: its validation F1 will be 0 or undefined")
        return MaterializeResult(metadata={
            "label_source": source, "reference": samples.reference_source or source,
            "n_tiles": len(samples.tiles), "bands": ", ".join(samples.bands), "image_scaling": samples.image_scaling,
            "n_test_tiles": int((samples.tiles["fold"] == TEST_FOLD).sum()), "training_set_id": samples.set_id,
            "surveys": ", ".join(prepared.survey_ids), "folds": MetadataValue.md(per_fold.to_markdown()),
        }, data_version=version)

    _training_set.__doc__ = (
        f"Every tile with {source} labels of every survey, stored once as arrays read tile by tile, a "
        "held-out test split and a k-fold assignment in spatial blocks (augmentation is drawn afresh "
        "every epoch while training)."
        + ("" if source == LabelSource.MANUAL else " It inherits the manual training set's folds and test split on "
           "the tiles both hold, when there is one.")
        + (" Union: every tile manual or object-oriented labels cover, the pixel-wise union where both do."
           if source == LabelSource.UNION else ""))
    return _training_set


def trained_model_asset(settings: PipelineSettings, source: str, training_set: AssetsDefinition) -> AssetsDefinition:
    """One model per variant (architecture and input set) x fold, trained on one label source's training set."""

    @asset(name=f"{LabelSource.asset_prefix(source)}trained_model", partitions_def=model_partitions(settings),
           group_name="training", kinds={"pytorch", "mlflow"}, deps=[training_set], code_version="4", pool=CPU_POOL, op_tags=heavy_step_tags(gpu=True),
           automation_condition=retrain_trained(),
           description=f"One model per variant x fold, trained on the other folds of the {source}-label "
                       "training set (fresh augmented variants every epoch, bands normalised with the training folds' "
                       "statistics), selected on this fold's calibrated validation F1, with its decision threshold, "
                       "logged to MLflow as a child run of its cross-validation. A variant is an architecture with "
                       "an input set: `linknet` takes the image and slope, `linknet@rgb` the image alone.")
    def _trained_model(context: AssetExecutionContext, config: ModelTrainingConfig, data_store: DataStore,
                       mlflow_tracking: MlflowTracking) -> MaterializeResult:
        key = context.partition_key
        assert isinstance(key, MultiPartitionKey)
        layout, samples = data_store.layout, TrainingSet.load(data_store.layout.training_set(source))
        variant = ModelVariant.parse(key.keys_by_dimension["architecture"])
        run = FoldRun(variant.architecture, int(key.keys_by_dimension["fold"]), config.resolve(), config.profile,
                      source, variant.inputs)
        checkpoint = layout.checkpoint(source, run.variant, run.fold, run.checkpoint_key(samples))
        tags = {"dagster.run_id": context.run.run_id, "dagster.asset_key": context.asset_key.to_user_string(),
                "dagster.partition": str(key), "architecture": run.architecture, "inputs": run.inputs,
                "fold": str(run.fold), "label_source": source, "landslide.checkpoint": run.checkpoint_key(samples)}
        device = pick_device()
        claim_cores(context)
        if device.type == "cpu":
            retain_freed_memory()  # +10-58 % images/s: large activations stop being re-faulted each step
        with (mlflow_tracking.fold_run(run.group(samples), f"{run.variant} {settings.n_folds}-fold CV ({source} "
                                       f"labels)", f"{run.variant}-fold{run.fold}-{source}", tags,
                                       resuming=checkpoint.is_file()) as mlflow_run,
              atomic_directory(layout.model(source, run.variant, run.fold)) as staging):
            trained, model_uri = train_fold(samples, run, device, mlflow_tracking, mlflow_run.info.run_id, staging,
                                            checkpoint, lambda epoch: context.log.info(_progress(run, epoch)))
            version = DataVersion(fingerprint([staging / MODEL_WEIGHTS]))
        if trained.result.resumed_from_epoch:
            context.log.info(f"resumed from the checkpoint after epoch {trained.result.resumed_from_epoch}")
        checkpoint.unlink(missing_ok=True)
        return MaterializeResult(metadata={
            **trained.facts(), "mlflow_run_id": mlflow_run.info.run_id, "model_uri": model_uri,
            "mlflow_run": mlflow_tracking.run_url(mlflow_run.info.run_id),
            "device": str(device), "profile": config.profile, "label_source": source, "inputs": run.inputs,
            "bands": ", ".join(trained.spec.bands)}, data_version=version)

    return _trained_model


def _progress(run: FoldRun, epoch: EpochReport) -> str:
    return (f"{run.variant} fold {run.fold} epoch {epoch.epoch}/{run.profile.training.epochs}: loss "
            f"{epoch.train_loss:.4f}, val loss {epoch.val_loss:.4f}, val F1 {epoch.val_f1:.3f} (arg-max), "
            f"{epoch.val_f1_calibrated:.3f} at {epoch.val_threshold:.3f}, {epoch.images_per_second:.1f} images/s")


def build_training_assets(settings: PipelineSettings, source: str = LabelSource.MANUAL) -> list[AssetsDefinition]:
    """The training set and the model assets of one label source (``training_set`` and
    ``trained_model`` for manual labels, ``obia_``/``union_training_set`` and ``..._trained_model``
    for object-oriented labels and the union); the model partitions depend on the settings."""
    training_set = training_set_asset(settings, source)
    return [training_set, trained_model_asset(settings, source, training_set)]
