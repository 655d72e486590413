"""Sends the survey chain through a Dagster server's run queue (the stack's, or any team server's).

The runs are the ones ``defs.runner.run_chain`` executes in process, submitted over the
webserver's GraphQL API: every run of a stage at once (the model partitions then spread over the
workers), the next stage once they all succeeded. The queue (``deploy/dagster.yaml``) and the
pool ``cpu`` decide how many run together.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster import DagsterRunStatus, Definitions, MultiPartitionKey
from dagster_graphql import DagsterGraphQLClient

from landslide_pipeline.defs.partitions import SURVEY_PARTITIONS
from landslide_pipeline.defs.runner import ChainRun, job_run_config
from landslide_pipeline.stack.services import StackError

REPOSITORY = "__repository__"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
_ADD_PARTITION = """
mutation Add($name: String!, $key: String!, $repository: RepositorySelector!) {
  addDynamicPartition(partitionsDefName: $name, partitionKey: $key, repositorySelector: $repository) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""


def partition_tags(key: str | MultiPartitionKey | None) -> dict[str, str]:
    """The run tags that name a partition, as the launchpad sets them."""
    if key is None:
        return {}
    tags = {"dagster/partition": str(key)}
    if isinstance(key, MultiPartitionKey):
        tags |= {f"dagster/partition/{d.dimension_name}": d.partition_key for d in key.dimension_keys}
    return tags


@dataclass
class ChainSubmission:
    """The runs a chain submitted, by chain run name, and how each ended."""

    run_ids: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, DagsterRunStatus] = field(default_factory=dict)
    #: Seconds from the chain's submission to each run's end (as polled, to about a second).
    finished_s: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [name for name, status in self.statuses.items() if status != DagsterRunStatus.SUCCESS]


class StackClient:
    """A Dagster webserver's GraphQL API, for the one code location of this project."""

    def __init__(self, host: str, port: int, location: str) -> None:
        self.url = f"http://{host}:{port}/graphql"
        self.location = location
        self.graphql = DagsterGraphQLClient(host, port_number=port)

    def add_surveys(self, survey_ids: Sequence[str]) -> None:
        """Adds the survey partitions (known ones stay)."""
        for survey_id in survey_ids:
            answer = self.query(_ADD_PARTITION, {"name": SURVEY_PARTITIONS, "key": survey_id, "repository": {
                "repositoryLocationName": self.location, "repositoryName": REPOSITORY}})["addDynamicPartition"]
            if answer["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
                raise StackError(f"adding survey partition {survey_id}: {answer.get('message', answer)}")

    def submit(self, chain_run: ChainRun, run_config: dict) -> str:
        """Queues one run; returns its id."""
        return self.graphql.submit_job_execution(chain_run.job_name, repository_location_name=self.location,
                                                 repository_name=REPOSITORY, run_config=run_config,
                                                 tags=partition_tags(chain_run.partition_key))

    def wait(self, run_ids: Mapping[str, str], timeout: float,
             on_finished: Callable[[str, DagsterRunStatus], None] | None = None) -> dict[str, DagsterRunStatus]:
        """Waits until every run finished.

        Raises:
            StackError: some run still had not finished after ``timeout`` seconds.
        """
        statuses: dict[str, DagsterRunStatus] = {}
        deadline = time.monotonic() + timeout
        while len(statuses) < len(run_ids):
            if time.monotonic() > deadline:
                waiting = sorted(set(run_ids) - set(statuses))
                raise StackError(f"runs not finished after {timeout:g} s: {', '.join(waiting)}")
            for name, run_id in run_ids.items():
                if name not in statuses and (status := self.graphql.get_run_status(run_id)) in FINISHED:
                    statuses[name] = status
                    if on_finished is not None:
                        on_finished(name, status)
            time.sleep(1.0)
        return statuses

    def query(self, query: str, variables: dict) -> dict:
        """One GraphQL request; its data.

        Raises:
            StackError: the server answered with errors.
        """
        request = urllib.request.Request(self.url, data=json.dumps({"query": query, "variables": variables}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise StackError(f"GraphQL error: {answer['errors']}")
        return dict(answer["data"])


def submit_chain(client: StackClient, defs: Definitions, survey_ids: Sequence[str], stages: list[list[ChainRun]],
                 timeout: float = 3600.0, on_finished: Callable[[str, DagsterRunStatus], None] | None = None,
                 ) -> ChainSubmission:
    """Queues the chain stage by stage (``defs.runner.chain_stages``) and stops at the first stage
    with a failed run.

    Args:
        client: The server.
        defs: The Definitions the server runs (for each job's run config).
        survey_ids: The surveys to add as partitions first.
        stages: The chain's runs in stages.
        timeout: Seconds each stage may take.
        on_finished: Called with each finished run's name and status.
    """
    client.add_surveys(survey_ids)
    submission, start = ChainSubmission(), time.monotonic()

    def finished(name: str, status: DagsterRunStatus) -> None:
        submission.finished_s[name] = time.monotonic() - start
        if on_finished is not None:
            on_finished(name, status)

    for stage in stages:
        submitted = {run.name: client.submit(run, job_run_config(defs, run.job_name, run.asset_config))
                     for run in stage}
        submission.run_ids |= submitted
        submission.statuses |= client.wait(submitted, timeout, finished)
        if submission.failed:
            break
    return submission
