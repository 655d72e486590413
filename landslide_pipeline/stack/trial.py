"""The stack tried end to end on one machine: the test of ``make test`` and ``bench/stack.py``.

A stack is started in a work folder on free loopback ports, a small generated open-pit survey is
sent through its run queue (prepare, training set, one U-Net per fold, evaluation, champion, map),
what the runs left is read back from the servers, and the stack is stopped.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from dagster import DagsterRunStatus

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.runner import chain_stages
from landslide_pipeline.layout import MAP_FACTS, DataLayout
from landslide_pipeline.settings import PipelineSettings, StorageSettings
from landslide_pipeline.stack.client import StackClient, submit_chain
from landslide_pipeline.stack.stack import LOCATION, Stack, StackConfig
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey

SURVEY = "stack_pit"
#: Small enough for a test (the stack, not the model, is on trial): 64 px tiles of a 256 px survey,
#: a narrow U-Net, 2 epochs per fold.
TRIAL_CONFIG: dict[str, dict] = {"survey_tiles": {"tile_size": 64},
                "trained_model": {"epochs": 2, "batch_size": 16, "width": 0.125, "warmup_epochs": 1, "draws": 1}}
#: Where a worker names itself in the engine event of each step it runs (dagster_celery.tasks).
WORKER_LABEL = "Celery worker"
_WORKER_EVENTS = """
query Events($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run { eventConnection(afterCursor: null) { events {
      ... on EngineEvent { metadataEntries { label ... on TextMetadataEntry { text } } } } } }
  }
}"""


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class StackTrial:
    """What one trial found. ``run_statuses``: run name -> final status."""

    run_statuses: dict[str, DagsterRunStatus] = field(default_factory=dict)
    run_finished_s: dict[str, float] = field(default_factory=dict)
    start_s: float = 0.0
    parent_runs_per_cv: dict[str, int] = field(default_factory=dict)
    artifact_store: str = ""
    model_files_in_store: int = 0
    workers_used: list[str] = field(default_factory=list)
    map_facts: dict = field(default_factory=dict)
    champion: dict = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def runs_failed(self) -> int:
        return sum(status != DagsterRunStatus.SUCCESS for status in self.run_statuses.values())


def run_trial(work: Path, n_folds: int = 2, workers: int = 2) -> StackTrial:
    """Starts a stack in ``work``, sends the chain of one generated survey through it, reads back
    what it left, and stops it (also on failure)."""
    data = work / "data"
    generate_survey(DataLayout(data).raw_survey(SURVEY), SyntheticSurveySpec(size_px=256, n_landslides=3, seed=11))
    settings = PipelineSettings(architectures=("unet",), n_folds=n_folds, input_sets=("rgb-slope",))
    partitions = {"LANDSLIDE_ARCHITECTURES": "unet", "LANDSLIDE_FOLDS": str(n_folds),
                  "LANDSLIDE_INPUT_SETS": "rgb-slope"}
    pg, redis, mlflow_port, code, web = free_ports(5)
    config = StackConfig(work / "stack", data, pg, redis, mlflow_port, code, web, workers, extra_env=partitions)
    stack, trial = Stack(config), StackTrial()
    start = time.perf_counter()
    try:
        trial.pids = stack.start()
        trial.start_s = time.perf_counter() - start
        client = StackClient("127.0.0.1", config.web_port, LOCATION)
        defs = build_definitions(settings, StorageSettings(str(data), config.tracking_uri))
        stages = chain_stages(settings, [SURVEY], TRIAL_CONFIG, train={"unet": {}})
        submission = submit_chain(client, defs, [SURVEY], stages, timeout=900)
        trial.run_statuses, trial.run_finished_s = submission.statuses, submission.finished_s
        trial.workers_used = workers_used(client, list(submission.run_ids.values()))
        read_tracking(trial, config)
        facts = DataLayout(data).map(SURVEY) / MAP_FACTS
        trial.map_facts = json.loads(facts.read_text()) if facts.is_file() else {}
    finally:
        trial.stopped = stack.stop()
        trial.wall_s = time.perf_counter() - start
    return trial


def workers_used(client: StackClient, run_ids: list[str]) -> list[str]:
    """The Celery workers (node names without the host) that ran the steps of these runs."""
    names = set()
    for run_id in run_ids:
        events = client.query(_WORKER_EVENTS, {"runId": run_id})["runOrError"]["eventConnection"]["events"]
        for event in events:
            for entry in event.get("metadataEntries") or []:
                if entry["label"] == WORKER_LABEL:
                    names.add(re.sub(r"@.*", "", entry["text"]))
    return sorted(names)


def read_tracking(trial: StackTrial, config: StackConfig) -> None:
    """The CV parent runs per cross-validation, the experiment's artifact store and the champion, from the server."""
    client = mlflow.MlflowClient(tracking_uri=config.tracking_uri)
    experiment = client.get_experiment_by_name("landslide-pipeline")
    if experiment is None:
        return
    trial.artifact_store = experiment.artifact_location
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`landslide.cv_group` != ''")
    for run in parents:
        group = run.data.tags["landslide.cv_group"]
        trial.parent_runs_per_cv[group] = trial.parent_runs_per_cv.get(group, 0) + 1
    store = Path(config.artifact_destination)
    trial.model_files_in_store = len(list(store.rglob("MLmodel"))) if store.is_dir() else 0
    version = client.get_model_version_by_alias("landslide-segmenter", "champion")
    trial.champion = {"version": int(version.version), "run_id": version.run_id, "source": version.source}
