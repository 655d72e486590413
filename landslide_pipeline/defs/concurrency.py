"""How heavy steps share the machine: one concurrency pool, and torch threads per step.

The shipped instance config (``configs/dagster.yaml``, copied into ``DAGSTER_HOME`` by ``make demo``
and ``make ui``) queues runs and gives the pool ``cpu`` one slot at run granularity: on a 2-core
workstation the queue starts one run with a heavy step at a time, which uses every core (two training processes on 2 cores were measured
at 2.3 + 2.3 images/s against 16.3 for one: torch's threads oversubscribe). On a bigger machine
raise the pool's limit (``dagster instance concurrency set cpu N``) and set ``LANDSLIDE_THREADS``
to the cores / N, so each of the N steps takes its share.
"""

import os

from dagster import AssetExecutionContext

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
