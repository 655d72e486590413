"""Partitions: surveys arrive at run time; models are variant (architecture and input set) x fold."""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

from landslide_pipeline.settings import PipelineSettings

#: The dynamic partitions of surveys: one per folder under data/raw/.
SURVEY_PARTITIONS = "survey"
survey_partitions = DynamicPartitionsDefinition(name=SURVEY_PARTITIONS)


def model_partitions(settings: PipelineSettings) -> MultiPartitionsDefinition:
    """Architecture x fold partitions of the model assets. The "architecture" keys are model
    variants (``training.inputs``): ``linknet`` (the default input set, image + slope) and
    ``linknet@rgb`` (the image alone), ..."""
    return MultiPartitionsDefinition({
        "architecture": StaticPartitionsDefinition(settings.model_variants),
        "fold": StaticPartitionsDefinition([str(k) for k in range(settings.n_folds)]),
    })
