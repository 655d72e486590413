"""The one Definitions object, loaded by ``dagster dev -w workspace.yaml``."""

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.settings import ExecutionSettings, PipelineSettings, StorageSettings

defs = build_definitions(PipelineSettings.from_env(), StorageSettings.from_env(), ExecutionSettings.from_env())
