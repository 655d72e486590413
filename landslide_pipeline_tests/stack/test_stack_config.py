"""The stack's settings and command line, without starting anything."""

import pytest

from landslide_pipeline.cli import main
from landslide_pipeline.stack.services import StackError, stop_process_groups
from landslide_pipeline.stack.stack import Stack, StackConfig


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDSLIDE_STACK_DIR", str(tmp_path / "team"))
    monkeypatch.setenv("LANDSLIDE_STACK_PORTS", "1001,1002,1003,1004,1005")
    monkeypatch.setenv("LANDSLIDE_STACK_WORKERS", "3")
    config = StackConfig.from_env(str(tmp_path / "data"))
    assert (config.root, config.workers) == (tmp_path / "team", 3)
    assert (config.pg_port, config.redis_port, config.mlflow_port, config.code_port, config.web_port) == (
        1001, 1002, 1003, 1004, 1005)
    env = config.client_env("secret")
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:1003"
    assert env["LANDSLIDE_CELERY_BROKER"] == "redis://127.0.0.1:1002/0"
    assert env["DAGSTER_PG_PORT"] == "1001" and env["DAGSTER_PG_PASSWORD"] == "secret"
    assert env["LANDSLIDE_EXECUTOR"] == "celery" and env["LANDSLIDE_DATA"] == str(tmp_path / "data")
    assert env["LANDSLIDE_ARTIFACT_ROOT"].startswith("mlflow-artifacts:")  # models go through the server
    assert config.artifact_destination == str(tmp_path / "team" / "artifacts")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("LANDSLIDE_STACK_PORTS", "1,2,3", "needs 5 port numbers"),
    ("LANDSLIDE_STACK_PORTS", "1,2,3,4,web", "needs 5 port numbers"),
    ("LANDSLIDE_STACK_WORKERS", "0", "must be 1 or more"),
])
def test_bad_settings_are_named(monkeypatch, tmp_path, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(StackError, match=message):
        StackConfig.from_env(str(tmp_path))


def test_status_and_stop_of_a_stack_that_does_not_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LANDSLIDE_STACK_DIR", str(tmp_path / "none"))
    assert main(["stack", "status"]) == 1
    assert "no stack runs from" in capsys.readouterr().out
    assert main(["stack", "stop"]) == 0
    assert Stack(StackConfig(tmp_path / "none", tmp_path)).stop() == []


def test_a_second_start_from_the_same_folder_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "stack.json").write_text('{"pids": {}, "config": {}}')
    monkeypatch.setenv("LANDSLIDE_STACK_DIR", str(tmp_path))
    assert main(["stack", "start", "--data", str(tmp_path / "data")]) == 2
    assert "already runs from" in capsys.readouterr().err


def test_stopping_groups_that_are_gone_does_nothing():
    assert stop_process_groups([2 ** 22 + 12345]) == []
