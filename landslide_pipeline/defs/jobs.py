"""Jobs that group the assets the way a user runs them (also the steps of the demo)."""

from __future__ import annotations

from dagster import AssetSelection, MultiPartitionsDefinition, define_asset_job

from landslide_pipeline.defs.partitions import survey_partitions
from landslide_pipeline.layout import LabelSource

PREPARE_SURVEY = "prepare_survey"
EVALUATE = "evaluate_models"
COMPARE_LABEL_SOURCES = "compare_label_sources"
RUN_EXPERIMENTS = "run_experiments"
#: Per label source: the job that builds its training set, and the one that trains its models.
BUILD_TRAINING_SET = {s: f"build_{LabelSource.asset_prefix(s)}training_set" for s in LabelSource.ALL}
TRAIN_MODELS = {s: f"train_{LabelSource.asset_prefix(s)}models" for s in LabelSource.ALL}
_LABELS = {LabelSource.MANUAL: "manual labels", LabelSource.OBIA: "object-oriented labels",
           LabelSource.UNION: "the union of manual and object-oriented labels"}


def build_jobs(models: MultiPartitionsDefinition) -> list:
    """The jobs a user runs, grouping the assets as the demo runs them."""
    per_source = []
    for source in LabelSource.ALL:
        prefix = LabelSource.asset_prefix(source)
        per_source += [
            define_asset_job(BUILD_TRAINING_SET[source], AssetSelection.assets(f"{prefix}training_set"),
                             description=f"Gather the tiles with {_LABELS[source]} of all surveys, with their folds "
                                         "and test split."),
            define_asset_job(TRAIN_MODELS[source], AssetSelection.assets(f"{prefix}trained_model"), partitions_def=models,
                             description=f"Train one variant x fold model (a model partition) on {_LABELS[source]}."),
        ]
    return [
        define_asset_job(PREPARE_SURVEY, AssetSelection.groups("survey", "labels"), partitions_def=survey_partitions,
                         description="Validate, tile and label one survey (a survey partition)."),
        *per_source,
        define_asset_job(EVALUATE, AssetSelection.assets("fold_ensembles", "evaluation_table", "champion_model",
                                                      "architecture_comparison"),
                         description="Combine each model's fold models, score every model of every label source, "
                                     "check the table's schema, register the champion and its aliases, report the "
                                     "architectures."),
        # Study A's Table 6: models of each label source, compared on the same tiles.
        define_asset_job(COMPARE_LABEL_SOURCES, AssetSelection.assets("label_source_comparison"),
                         description="Compare the variants trained on two or more label sources."),
        define_asset_job(RUN_EXPERIMENTS, AssetSelection.groups("experiments"),
                         description="Input-band and training-set size experiments (they train their own models)."),
    ]
