"""The team stack on this machine, end to end: PostgreSQL, MLflow server, Redis, Dagster daemon
and UI, two Celery workers; the demo survey's chain with 2 folds sent through the run queue.

Usage: ``python bench/stack.py [--work DIR] [--folds 2] [--workers 2]``

Prints each run's outcome, then, as its last line, JSON with ``runs_succeeded``, ``runs_failed``,
``parent_runs_per_cv`` (the most MLflow parent runs any one cross-validation got: 1 is right),
``artifact_store`` (the experiment's artifact location), ``workers_used`` (Celery workers that ran
steps) and ``wall_s`` (stack start to stop).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from landslide_pipeline.stack.trial import run_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one, removed)")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="landslide-stack-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # PostgreSQL runs as its own user when we are root: it must reach its folder
    try:
        trial = run_trial(work, args.folds, args.workers)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"stack started in {trial.start_s:.1f} s; the chain's runs (seconds from submission to their end):")
    for name, status in trial.run_statuses.items():
        print(f"  {name:40} {status.value:8} {trial.run_finished_s[name]:6.1f}")
    print(f"CV parent runs: {trial.parent_runs_per_cv}; model files in the server's store: "
          f"{trial.model_files_in_store}; champion v{trial.champion.get('version')}; map made with "
          f"{trial.map_facts.get('alias')} v{trial.map_facts.get('version')}; stopped {', '.join(trial.stopped)}")
    print(json.dumps({"runs_succeeded": len(trial.run_statuses) - trial.runs_failed, "runs_failed": trial.runs_failed,
                      "parent_runs_per_cv": max(trial.parent_runs_per_cv.values(), default=0),
                      "artifact_store": trial.artifact_store, "workers_used": trial.workers_used,
                      "wall_s": round(trial.wall_s, 1)}))


if __name__ == "__main__":
    main()
