"""How heavy steps share the machine: one concurrency pool, torch threads per step, and where steps run.

The shipped instance config (``configs/dagster.yaml``, copied into ``DAGSTER_HOME`` by ``make demo``
and ``make ui``) queues runs and gives the pool ``cpu`` one slot at run granularity: on a 2-core
workstation the queue starts one run with a heavy step at a time, which uses every core (two training processes on 2 cores were measured
at 2.3 + 2.3 images/s against 16.3 for one: torch's threads oversubscribe). On a bigger machine
raise the pool's limit (``dagster instance concurrency set cpu N``) and set ``LANDSLIDE_THREADS``
to the cores / N, so each of the N steps takes its share.

Beyond one machine (``docs/deploy.md``), ``LANDSLIDE_EXECUTOR`` picks the executor: Celery workers
(``deploy/``: heavy steps go to the queue ``LANDSLIDE_HEAVY_QUEUE``, light ones to Celery's
``dagster`` queue) or one Kubernetes pod per step, with the resources of ``heavy_step_tags``.
"""

import os
from typing import Any

from dagster import AssetExecutionContext, ExecutorDefinition, multi_or_in_process_executor

from landslide_pipeline.settings import ExecutionSettings
from landslide_pipeline.training.performance import available_cores, configure_threads

#: The concurrency pool of every CPU-heavy asset (tiling, object-oriented labelling, training,
#: evaluation, mapping, experiments): the shipped instance config (``dagster.yaml``) lets one such
#: step run at a time on a small machine; raise the limit with ``dagster instance concurrency set
#: cpu N`` on a bigger one (and set ``LANDSLIDE_THREADS`` to the cores / N).
CPU_POOL = "cpu"


def claim_cores(context: AssetExecutionContext) -> int:
    """Sets this step's torch threads: ``LANDSLIDE_THREADS``, else every core it may run on.

    Raises:
        ValueError: ``LANDSLIDE_THREADS`` is not a positive integer.
    """
    wanted = os.environ.get("LANDSLIDE_THREADS", "").strip()
    if wanted and not (wanted.isdigit() and int(wanted) > 0):
        raise ValueError(f"LANDSLIDE_THREADS must be a positive integer, got {wanted!r}")
    threads = configure_threads(int(wanted) if wanted else available_cores()).intra_op
    context.log.debug(f"{threads} torch thread(s) (pool {CPU_POOL})")
    return threads


#: dagster-celery's op tag naming the queue a step is sent to (``dagster_celery.tags``).
CELERY_QUEUE_TAG = "dagster-celery/queue"
#: dagster-k8s's op tag holding a step pod's Kubernetes config (``dagster_k8s.job``).
K8S_CONFIG_TAG = "dagster-k8s/config"
#: A heavy step's pod: every core of a small node, memory for a training set and a scene window.
HEAVY_REQUESTS = {"cpu": "2", "memory": "4Gi"}
HEAVY_LIMITS = {"memory": "12Gi"}


def heavy_step_tags(gpu: bool = False, settings: ExecutionSettings | None = None) -> dict[str, Any]:
    """Op tags of a heavy step: its Celery queue and its pod's resources (with ``gpu``, the
    ``LANDSLIDE_K8S_GPUS`` GPUs that training and mapping request). The other executors ignore them."""
    settings = settings or ExecutionSettings.from_env()
    limits = dict(HEAVY_LIMITS)
    if gpu and settings.k8s_gpus:
        limits["nvidia.com/gpu"] = str(settings.k8s_gpus)
    return {CELERY_QUEUE_TAG: settings.heavy_queue,
            K8S_CONFIG_TAG: {"container_config": {"resources": {"requests": dict(HEAVY_REQUESTS), "limits": limits}}}}


def build_executor(settings: ExecutionSettings) -> ExecutorDefinition:
    """The executor of every job: Dagster's default, Celery workers on the configured broker, or
    one Kubernetes pod per step. The Celery and Kubernetes packages are the ``deploy`` extra's,
    imported only when chosen."""
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured({"broker": settings.celery_broker, "backend": settings.celery_backend})
    if settings.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return multi_or_in_process_executor
