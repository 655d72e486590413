"""Jobs that group the assets the way a user runs them (also the steps of the demo)."""

from __future__ import annotations

from dagster import AssetSelection, MultiPartitionsDefinition, define_asset_job

from landslide_pipeline.defs.partitions import survey_partitions

PREPARE_SURVEY = "prepare_survey"
BUILD_TRAINING_SET = "build_training_set"
TRAIN_MODELS = "train_models"
EVALUATE = "evaluate_models"


def build_jobs(models: MultiPartitionsDefinition) -> list:
    return [
        define_asset_job(PREPARE_SURVEY, AssetSelection.groups("survey", "labels"), partitions_def=survey_partitions,
                         description="Validate, tile and label one survey (a survey partition)."),
        define_asset_job(BUILD_TRAINING_SET, AssetSelection.assets("training_set"),
                         description="Gather labelled tiles of all surveys, augment, assign folds."),
        define_asset_job(TRAIN_MODELS, AssetSelection.assets("trained_model"), partitions_def=models,
                         description="Train one architecture x fold model (a model partition)."),
        define_asset_job(EVALUATE, AssetSelection.groups("evaluation"),
                         description="Score every fold model and check the table's schema."),
    ]
