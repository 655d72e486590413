"""Jobs that group the assets the way a user runs them (also the steps of the demo)."""

from __future__ import annotations

from dagster import AssetSelection, MultiPartitionsDefinition, define_asset_job

from landslide_pipeline.defs.partitions import survey_partitions

PREPARE_SURVEY = "prepare_survey"
BUILD_TRAINING_SET = "build_training_set"
TRAIN_MODELS = "train_models"
EVALUATE = "evaluate_models"
BUILD_OBIA_TRAINING_SET = "build_obia_training_set"
TRAIN_OBIA_MODELS = "train_obia_models"
COMPARE_LABEL_SOURCES = "compare_label_sources"
RUN_EXPERIMENTS = "run_experiments"


def build_jobs(models: MultiPartitionsDefinition) -> list:
    """The jobs a user runs, grouping the assets as the demo runs them."""
    return [
        define_asset_job(PREPARE_SURVEY, AssetSelection.groups("survey", "labels"), partitions_def=survey_partitions,
                         description="Validate, tile and label one survey (a survey partition)."),
        define_asset_job(BUILD_TRAINING_SET, AssetSelection.assets("training_set"),
                         description="Gather labelled tiles of all surveys, assign folds and the test split."),
        define_asset_job(TRAIN_MODELS, AssetSelection.assets("trained_model"), partitions_def=models,
                         description="Train one architecture x fold model (a model partition)."),
        define_asset_job(EVALUATE, AssetSelection.assets("fold_ensembles", "evaluation_table", "champion_model",
                                                      "architecture_comparison"),
                         description="Combine each architecture's fold models, score every model, check the "
                                     "table's schema, register the champion, report the architectures."),
        # Study A's Table 6: the same models trained on object-oriented labels, compared.
        define_asset_job(BUILD_OBIA_TRAINING_SET, AssetSelection.assets("obia_training_set"),
                         description="The training set from object-oriented labels, on the manual set's folds."),
        define_asset_job(TRAIN_OBIA_MODELS, AssetSelection.assets("obia_trained_model"), partitions_def=models,
                         description="Train one architecture x fold model on object-oriented labels."),
        define_asset_job(COMPARE_LABEL_SOURCES, AssetSelection.assets("label_source_comparison"),
                         description="Score manual- and object-oriented-label models against manual masks."),
        define_asset_job(RUN_EXPERIMENTS, AssetSelection.groups("experiments"),
                         description="Input-band and training-set size experiments (they train their own models)."),
    ]
