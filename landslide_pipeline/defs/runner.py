"""Materializing the whole chain in order, in this process, on a given Dagster instance.

The chain crosses three partitionings (survey, none, architecture x fold), and one Dagster run
covers one partition of one partitioning, so the chain is a sequence of runs: each survey's
preparation, the training set, each model partition, the evaluation, then each survey's map. Every run is recorded
in the instance, so ``dagster dev`` on the same DAGSTER_HOME shows them all.
"""

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dagster import DagsterInstance, Definitions, ExecuteInProcessResult, MultiPartitionKey

from landslide_pipeline.defs.jobs import (
    BUILD_OBIA_TRAINING_SET,
    BUILD_TRAINING_SET,
    COMPARE_LABEL_SOURCES,
    EVALUATE,
    PREPARE_SURVEY,
    RUN_EXPERIMENTS,
    TRAIN_MODELS,
    TRAIN_OBIA_MODELS,
)
from landslide_pipeline.defs.mapping_assets import MAP_SURVEYS
from landslide_pipeline.defs.partitions import SURVEY_PARTITIONS
from landslide_pipeline.settings import PipelineSettings

LOG_LEVEL_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _run_config(defs: Definitions, job_name: str, asset_config: Mapping[str, dict]) -> dict[str, Any]:
    job = defs.resolve_job_def(job_name)
    ops = {name: {"config": cfg} for name, cfg in asset_config.items() if job.graph.has_node_named(name)}
    return {**LOG_LEVEL_INFO, **({"ops": ops} if ops else {})}


def run_chain(
    defs: Definitions,
    settings: PipelineSettings,
    instance: DagsterInstance,
    survey_ids: Iterable[str],
    asset_config: Mapping[str, dict] | None = None,
    on_step: Callable[[str, float], None] | None = None,
    label_experiment: bool = False,
    experiments: bool = False,
    train: Mapping[str, dict] | None = None,
) -> list[ExecuteInProcessResult]:
    """Runs every stage for the given surveys; raises on the first failed run.

    Args:
        defs: The project's Definitions.
        settings: The partition settings ``defs`` was built with.
        instance: Where runs and dynamic partitions are recorded.
        survey_ids: Surveys under ``data/raw`` to add as partitions and prepare.
        asset_config: Run config per asset name, e.g. ``{"trained_model": {"epochs": 2}}``;
            ``training_set`` and ``trained_model`` config also applies to their ``obia_`` twins
            unless those have their own.
        on_step: Called with each finished step's name and its wall time in seconds.
        label_experiment: Also train every model on object-oriented labels and compare the two
            label sources (study A, Table 6); doubles the training time.
        experiments: Also run the input-band and training-set size experiments.
        train: The architectures to train (a subset of the partitions is normal: evaluation
            takes what has been trained), each with ``trained_model`` config overrides of its
            own, e.g. ``{"linknet": {}, "unet": {"epochs": 12}}``; default every architecture
            with ``asset_config`` alone.

    Returns:
        The result of every run, in order.
    """
    # The object-oriented chain trains exactly like the manual one unless given its own config.
    asset_config = {**{f"obia_{name}": cfg for name, cfg in (asset_config or {}).items()
                       if name in ("training_set", "trained_model")}, **(asset_config or {})}
    survey_ids = list(survey_ids)
    instance.add_dynamic_partitions(SURVEY_PARTITIONS, survey_ids)
    results: list[ExecuteInProcessResult] = []

    def step(name: str, job_name: str, partition_key: str | MultiPartitionKey | None = None,
             overrides: Mapping[str, dict] | None = None) -> None:
        start = time.perf_counter()
        config = {**asset_config, **{k: {**asset_config.get(k, {}), **v} for k, v in (overrides or {}).items()}}
        results.append(defs.resolve_job_def(job_name).execute_in_process(
            run_config=_run_config(defs, job_name, config), instance=instance, partition_key=partition_key))
        if on_step is not None:
            on_step(name, time.perf_counter() - start)

    for survey_id in survey_ids:
        step(f"prepare survey {survey_id}", PREPARE_SURVEY, survey_id)
    step("training set", BUILD_TRAINING_SET)
    plan = dict(train) if train is not None else {a: {} for a in settings.architectures}
    train_all("", TRAIN_MODELS, settings, step, plan)
    step("evaluation", EVALUATE)
    for survey_id in survey_ids:
        step(f"map survey {survey_id}", MAP_SURVEYS, survey_id)
    if label_experiment:
        step("object-oriented training set", BUILD_OBIA_TRAINING_SET)
        train_all("object-oriented ", TRAIN_OBIA_MODELS, settings, step, plan)
        step("label-source comparison", COMPARE_LABEL_SOURCES)
    if experiments:
        step("experiments", RUN_EXPERIMENTS)
    return results


def train_all(what: str, job_name: str, settings: PipelineSettings, step: Callable[..., None],
              plan: Mapping[str, dict]) -> None:
    """One run per fold partition of each planned architecture of a model job, with its overrides."""
    for architecture, overrides in plan.items():
        for fold in range(settings.n_folds):
            key = MultiPartitionKey({"architecture": architecture, "fold": str(fold)})
            model_asset = "trained_model" if job_name == TRAIN_MODELS else "obia_trained_model"
            step(f"train {what}{architecture} fold {fold}", job_name, key, {model_asset: overrides})
