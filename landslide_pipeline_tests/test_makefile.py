"""The Makefile is the README's set-up: every target must at least parse."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["demo", "test", "docs", "ui", "mlflow-ui", "clean-data"]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
@pytest.mark.parametrize("target", TARGETS)
def test_make_target_parses_and_names_its_command(target: str) -> None:
    # `make -n` prints the recipe without running it; a broken Makefile fails here in CI
    # with a readable test name instead of "missing separator" before any test runs.
    done = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), f"make {target} has an empty recipe"


def test_ui_targets_start_the_right_servers() -> None:
    recipes = {t: subprocess.run(["make", "-n", "-B", t], cwd=ROOT, capture_output=True, text=True).stdout
               for t in ("ui", "mlflow-ui")}
    assert "dagster dev" in recipes["ui"]
    assert "mlflow ui" in recipes["mlflow-ui"]
