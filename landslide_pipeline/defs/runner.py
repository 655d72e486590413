"""Materializing the whole chain in order, in this process, on a given Dagster instance.

The chain crosses three partitionings (survey, none, architecture x fold), and one Dagster run
covers one partition of one partitioning, so the chain is a sequence of runs: each survey's
preparation, the training set, each model partition, the evaluation, then each survey's map. Every run is recorded
in the instance, so ``dagster dev`` on the same DAGSTER_HOME shows them all.
"""

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

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


def run_job(defs: Definitions, instance: DagsterInstance, job_name: str, asset_config: Mapping[str, dict],
            partition_key: str | MultiPartitionKey | None = None) -> ExecuteInProcessResult:
    """Runs one job in this process, recorded on ``instance``, with the config of the assets it holds
    (``asset_config``: run config per asset name; other assets' entries are ignored)."""
    job = defs.resolve_job_def(job_name)
    ops = {name: {"config": cfg} for name, cfg in asset_config.items() if job.graph.has_node_named(name)}
    run_config = {**LOG_LEVEL_INFO, **({"ops": ops} if ops else {})}
    return job.execute_in_process(run_config=run_config, instance=instance, partition_key=partition_key)


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
    """Runs every stage for the given surveys; raises on the first failed run.

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
    sources = list(label_sources or ((LabelSource.MANUAL, LabelSource.OBIA) if label_experiment
                                     else (LabelSource.MANUAL,)))
    # The other label sources train exactly like the manual one unless given their own config.
    asset_config = {**{f"{LabelSource.asset_prefix(s)}{name}": cfg for name, cfg in (asset_config or {}).items()
                       if name in ("training_set", "trained_model") for s in sources}, **(asset_config or {})}
    survey_ids = list(survey_ids)
    instance.add_dynamic_partitions(SURVEY_PARTITIONS, survey_ids)
    results: list[ExecuteInProcessResult] = []

    def step(name: str, job_name: str, partition_key: str | MultiPartitionKey | None = None,
             overrides: Mapping[str, dict] | None = None) -> None:
        start = time.perf_counter()
        config = {**asset_config, **{k: {**asset_config.get(k, {}), **v} for k, v in (overrides or {}).items()}}
        results.append(run_job(defs, instance, job_name, config, partition_key))
        if on_step is not None:
            on_step(name, time.perf_counter() - start)

    for survey_id in survey_ids:
        step(f"prepare survey {survey_id}", PREPARE_SURVEY, survey_id)
    for source in dict.fromkeys([LabelSource.MANUAL, *sources]):
        step(f"{source} training set", BUILD_TRAINING_SET[source])
    default_plan = dict(train) if train is not None else {a: {} for a in settings.architectures}
    for source in sources:
        train_all(source, settings, step, (source_plans or {}).get(source, default_plan))
    step("evaluation", EVALUATE)
    if len(sources) > 1:
        step("label-source comparison", COMPARE_LABEL_SOURCES)
    for survey_id in survey_ids:
        step(f"map survey {survey_id}", MAP_SURVEYS, survey_id)
    if experiments:
        step("experiments", RUN_EXPERIMENTS)
    return results


def train_all(source: str, settings: PipelineSettings, step: Callable[..., None], plan: Mapping[str, dict]) -> None:
    """One run per fold partition of each planned variant of a label source's models, with its overrides."""
    model_asset = f"{LabelSource.asset_prefix(source)}trained_model"
    for variant, overrides in plan.items():
        for fold in range(settings.n_folds):
            key = MultiPartitionKey({"architecture": variant, "fold": str(fold)})
            step(f"train {variant} fold {fold} ({source} labels)", TRAIN_MODELS[source], key, {model_asset: overrides})
