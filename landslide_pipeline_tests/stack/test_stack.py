"""The team stack on this machine, for real: a private PostgreSQL cluster, an MLflow tracking server,
Redis, Dagster's code server, UI and daemon, and two Celery workers on loopback; the demo survey's
chain with 2 folds sent through the run queue (``stack.trial``), then everything stopped."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from dagster import DagsterRunStatus

from landslide_pipeline.stack.services import StackError, group_alive
from landslide_pipeline.stack.stack import postgres_bin
from landslide_pipeline.stack.trial import StackTrial, run_trial

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["postgres", "redis", "mlflow", "code-server", "worker1", "worker2", "webserver", "daemon"]


def _postgres_missing() -> str:
    try:
        postgres_bin()
    except StackError as err:
        return str(err)
    return ""


pytestmark = pytest.mark.skipif(bool(_postgres_missing()), reason=_postgres_missing())


def _project_state() -> dict[str, list[str]]:
    """What the project's own stores hold (the stack must not write there)."""
    return {name: sorted(os.listdir(ROOT / name)) if (ROOT / name).is_dir() else [] for name in ("mlruns", ".dagster")}


@pytest.fixture(scope="module")
def trial() -> tuple[StackTrial, Path, set[str], dict]:
    tmp_before, project_before = set(os.listdir(tempfile.gettempdir())), _project_state()
    work = Path(tempfile.mkdtemp(prefix="landslide-stack-test-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user when the tests run as root: it must reach its folder
    try:
        found = run_trial(work, n_folds=2, workers=2)
        leftovers = {"tmp": set(os.listdir(tempfile.gettempdir())) - tmp_before - {work.name},
                     "project_changed": _project_state() != project_before}
        logs = {p.name: p.read_text(errors="replace") for p in (work / "stack" / "logs").glob("*.log")}
        shutil.copytree(work / "stack" / "logs", "/tmp/last-stack-logs", dirs_exist_ok=True)
        yield found, work, leftovers, logs
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_every_run_of_the_chain_succeeded_through_the_queue(trial):
    found = trial[0]
    assert list(found.run_statuses) == ["prepare survey stack_pit", "manual training set",
                                        "train unet fold 0 (manual labels)", "train unet fold 1 (manual labels)",
                                        "evaluation", "map survey stack_pit"]
    assert set(found.run_statuses.values()) == {DagsterRunStatus.SUCCESS}


def test_each_cross_validation_has_exactly_one_parent_run(trial):
    parents = trial[0].parent_runs_per_cv
    assert len(parents) == 1 and list(parents.values()) == [1], parents


def test_models_live_in_the_servers_artifact_store_not_in_mlruns(trial):
    found, work = trial[0], trial[1]
    assert found.artifact_store == "mlflow-artifacts:/landslide-pipeline"
    assert found.model_files_in_store >= 3  # two fold models and their ensemble, at least
    assert not list(work.rglob("mlruns"))
    assert not trial[2]["project_changed"]


def test_the_map_was_made_with_the_champion_from_the_server(trial):
    found = trial[0]
    assert found.map_facts["alias"] == "champion"
    assert found.map_facts["version"] == found.champion["version"]
    assert found.map_facts["mlflow_run_id"] == found.champion["run_id"]


def test_steps_ran_on_both_workers(trial):
    assert trial[0].workers_used == ["worker1", "worker2"]


def test_no_store_was_ever_locked(trial):
    logs = trial[3]
    assert set(SERVICES) - {"postgres"} <= {name.removesuffix(".log") for name in logs}
    for name, text in logs.items():
        assert "database is locked" not in text, name


def test_the_stack_stopped_everything_it_started_and_left_nothing_outside_its_folder(trial):
    found, work, leftovers = trial[0], trial[1], trial[2]
    assert sorted(found.stopped) == sorted(SERVICES)
    assert set(found.pids) == set(SERVICES)
    assert not any(group_alive(pid) for name, pid in found.pids.items() if name != "postgres")
    assert not (work / "stack" / "postgres" / "postmaster.pid").exists()
    assert not (work / "stack" / "stack.json").exists()
    assert leftovers["tmp"] == set()
