"""Partitions: surveys arrive at run time; models are architecture x fold."""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

from landslide_pipeline.settings import PipelineSettings

#: The dynamic partitions of surveys: one per folder under data/raw/.
SURVEY_PARTITIONS = "survey"
survey_partitions = DynamicPartitionsDefinition(name=SURVEY_PARTITIONS)


def model_partitions(settings: PipelineSettings) -> MultiPartitionsDefinition:
    """Architecture x fold partitions of the model assets."""
    return MultiPartitionsDefinition({
        "architecture": StaticPartitionsDefinition(list(settings.architectures)),
        "fold": StaticPartitionsDefinition([str(k) for k in range(settings.n_folds)]),
    })
