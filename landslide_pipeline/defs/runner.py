"""Materializing the whole chain in order, in this process, on a given Dagster instance.

The chain crosses three partitionings (survey, none, architecture x fold), and one Dagster run
covers one partition of one partitioning, so the chain is a sequence of runs: each survey's
preparation, the training set, each model partition, the evaluation, then each survey's map. Every run is recorded
in the instance, so ``dagster dev`` on the same DAGSTER_HOME shows them all.
"""

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    MultiPartitionKey,
    define_asset_job,
)

from landslide_pipeline.defs.jobs import (
    BUILD_TRAINING_SET,
    COMPARE_LABEL_SOURCES,
    EVALUATE,
    PREPARE_SURVEY,
    RUN_EXPERIMENTS,
    TRAIN_MODELS,
)
from landslide_pipeline.defs.mapping_assets import MAP_SURVEYS
from landslide_pipeline.defs.partitions import SURVEY_PARTITIONS
from landslide_pipeline.layout import LabelSource
from landslide_pipeline.settings import PipelineSettings

LOG_LEVEL_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def job_run_config(defs: Definitions, job_name: str, asset_config: Mapping[str, dict]) -> dict:
    """The run config of one job: the config of the assets it holds (``asset_config``: run config
    per asset name; other assets' entries are ignored), with INFO logs."""
    job = defs.resolve_job_def(job_name)
    ops = {name: {"config": cfg} for name, cfg in asset_config.items() if job.graph.has_node_named(name)}
    return {**LOG_LEVEL_INFO, **({"ops": ops} if ops else {})}


def run_job(defs: Definitions, instance: DagsterInstance, job_name: str, asset_config: Mapping[str, dict],
            partition_key: str | MultiPartitionKey | None = None) -> ExecuteInProcessResult:
    """Runs one job in this process, recorded on ``instance``, with the config of the assets it holds."""
    return defs.resolve_job_def(job_name).execute_in_process(
        run_config=job_run_config(defs, job_name, asset_config), instance=instance, partition_key=partition_key)


def run_assets(defs: Definitions, instance: DagsterInstance, assets: Iterable[str], asset_config: Mapping[str, dict],
               partition_key: str | MultiPartitionKey | None = None) -> ExecuteInProcessResult:
    """Runs the named assets (one partition) in this process, as one run of a job made for them."""
    job = define_asset_job("selected_assets", AssetSelection.assets(*assets))
    return run_job(Definitions.merge(defs, Definitions(jobs=[job])), instance, "selected_assets", asset_config,
                   partition_key)


def prepare_surveys(defs: Definitions, instance: DagsterInstance, survey_ids: Iterable[str],
                    asset_config: Mapping[str, dict] | None = None) -> list[ExecuteInProcessResult]:
    """Adds the surveys as partitions and runs ``prepare_survey`` (validate, tile, label) for each."""
    survey_ids = list(survey_ids)
    instance.add_dynamic_partitions(SURVEY_PARTITIONS, survey_ids)
    return [run_job(defs, instance, PREPARE_SURVEY, asset_config or {}, survey_id) for survey_id in survey_ids]


@dataclass(frozen=True)
class ChainRun:
    """One run of the chain: a job, its partition and the config of its assets."""

    name: str
    job_name: str
    partition_key: str | MultiPartitionKey | None
    asset_config: Mapping[str, dict]


def chain_stages(
    settings: PipelineSettings,
    survey_ids: Sequence[str],
    asset_config: Mapping[str, dict] | None = None,
    label_experiment: bool = False,
    experiments: bool = False,
    train: Mapping[str, dict] | None = None,
    label_sources: Sequence[str] | None = None,
    source_plans: Mapping[str, Mapping[str, dict]] | None = None,
) -> list[list[ChainRun]]:
    """The chain's runs in stages: the runs of a stage are independent of each other (they may run
    at once, e.g. every model partition), each stage needs the ones before. ``run_chain`` documents
    the arguments."""
    sources = list(label_sources or ((LabelSource.MANUAL, LabelSource.OBIA) if label_experiment
                                     else (LabelSource.MANUAL,)))
    # The other label sources train exactly like the manual one unless given their own config.
    asset_config = {**{f"{LabelSource.asset_prefix(s)}{name}": cfg for name, cfg in (asset_config or {}).items()
                       if name in ("training_set", "trained_model") for s in sources}, **(asset_config or {})}

    def run(name: str, job_name: str, partition_key: str | MultiPartitionKey | None = None,
            overrides: Mapping[str, dict] | None = None) -> ChainRun:
        config = {**asset_config, **{k: {**asset_config.get(k, {}), **v} for k, v in (overrides or {}).items()}}
        return ChainRun(name, job_name, partition_key, config)

    default_plan = dict(train) if train is not None else {a: {} for a in settings.architectures}
    stages = [[run(f"prepare survey {s}", PREPARE_SURVEY, s) for s in survey_ids],
              [run(f"{LabelSource.MANUAL} training set", BUILD_TRAINING_SET[LabelSource.MANUAL])],
              # The other sources' sets inherit the manual set's folds.
              [run(f"{s} training set", BUILD_TRAINING_SET[s]) for s in sources if s != LabelSource.MANUAL],
              [model_run for source in sources
               for model_run in training_runs(source, settings, run, (source_plans or {}).get(source, default_plan))],
              [run("evaluation", EVALUATE)],
              [run("label-source comparison", COMPARE_LABEL_SOURCES)] if len(sources) > 1 else [],
              [run(f"map survey {s}", MAP_SURVEYS, s) for s in survey_ids],
              [run("experiments", RUN_EXPERIMENTS)] if experiments else []]
    return [stage for stage in stages if stage]


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
    label_sources: Sequence[str] | None = None,
    source_plans: Mapping[str, Mapping[str, dict]] | None = None,
) -> list[ExecuteInProcessResult]:
    """Runs every stage for the given surveys, one run after the other; raises on the first failed run.

    Args:
        defs: The project's Definitions.
        settings: The partition settings ``defs`` was built with.
        instance: Where runs and dynamic partitions are recorded.
        survey_ids: Surveys under ``data/raw`` to add as partitions and prepare.
        asset_config: Run config per asset name, e.g. ``{"trained_model": {"epochs": 2}}``;
            ``training_set`` and ``trained_model`` config also applies to their ``obia_`` and
            ``union_`` twins unless those have their own.
        on_step: Called with each finished step's name and its wall time in seconds.
        label_experiment: Also train on object-oriented labels and compare the label sources
            (study A, Table 6): ``label_sources`` manual and obia.
        experiments: Also run the input-band and training-set size experiments.
        train: The model partitions to train (a subset is normal: evaluation takes what has
            been trained), each variant key with ``trained_model`` config overrides of its own,
            e.g. ``{"linknet": {}, "unet": {"epochs": 12}, "linknet@rgb": {}}``; default every
            architecture with the default input set and ``asset_config`` alone.
        label_sources: The label sources to train (``LabelSource``), default manual (and obia
            with ``label_experiment``); ``("obia",)`` for surveys without hand-drawn labels.
            The manual training set is always built first: the other sources inherit its folds.
        source_plans: A plan like ``train`` for a label source that trains other partitions.

    Returns:
        The result of every run, in order.
    """
    survey_ids = list(survey_ids)
    instance.add_dynamic_partitions(SURVEY_PARTITIONS, survey_ids)
    results: list[ExecuteInProcessResult] = []
    for stage in chain_stages(settings, survey_ids, asset_config, label_experiment, experiments, train,
                              label_sources, source_plans):
        for chain_run in stage:
            start = time.perf_counter()
            results.append(run_job(defs, instance, chain_run.job_name, chain_run.asset_config,
                                   chain_run.partition_key))
            if on_step is not None:
                on_step(chain_run.name, time.perf_counter() - start)
    return results


def training_runs(source: str, settings: PipelineSettings, run: Callable[..., ChainRun],
                  plan: Mapping[str, dict]) -> list[ChainRun]:
    """One run per fold partition of each planned variant of a label source's models, with its overrides."""
    model_asset = f"{LabelSource.asset_prefix(source)}trained_model"
    return [run(f"train {variant} fold {fold} ({source} labels)", TRAIN_MODELS[source],
                MultiPartitionKey({"architecture": variant, "fold": str(fold)}), {model_asset: overrides})
            for variant, overrides in plan.items() for fold in range(settings.n_folds)]
