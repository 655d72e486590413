"""How the pipeline takes bad input and faults: cases tried, clear errors, partial outputs, data lost.

Usage: ``python bench/reliability.py [--rounds 4]``

Runs every case of the committed bad-input corpus (``landslide_pipeline_tests/reliability/corpus.py``:
hostile, corrupt, inconsistent or mis-configured survey files, each spoiling a good survey after a
first good run left outputs), then four faults:

- **concurrent runs**: two processes prepare the same survey (tiles and labels) ``--rounds`` times
  each, at once: every run must succeed, and the outputs be complete with nothing left over;
- **kill mid-write**: a child process tiling a larger version of the survey is SIGKILLed while
  it writes; the previous outputs must be intact, and the next run must sweep its leftovers;
- **lost tracking store**: a model on disk names an MLflow run of a store that is then deleted;
  the check every MLflow-using run does first must stop with a clear error;
- **corrupt checkpoint**: training resumed from a truncated checkpoint must set it aside and start
  afresh.

A case counts as a clear error when it fails naming its file (or, for an odd but valid input,
succeeds), as partial when a staging or trash folder or lock file is left, and as lost when the
earlier good outputs changed although the run failed. The last line is JSON with the keys
``cases``, ``clear_errors``, ``partial_outputs`` and ``data_lost``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Lets the script run from a checkout where the package is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from landslide_pipeline.layout import DataLayout  # noqa: E402
from landslide_pipeline_tests.reliability.corpus import (  # noqa: E402
    CASES,
    SURVEY,
    Outcome,
    leftovers,
    make_good_survey,
    prepare,
    run_case,
    snapshot,
    write_raster,
)


def _prepare_rounds(root: str, rounds: int) -> None:
    for _ in range(rounds):
        prepare(DataLayout(Path(root) / "data"))


def concurrent_runs(root: Path, rounds: int) -> Outcome:
    """Two processes prepare one survey at once; both must succeed and leave a complete output."""
    layout = DataLayout(root / "data")
    make_good_survey(layout.raw_survey(SURVEY))
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_prepare_rounds, args=(str(root), rounds)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    complete = _complete(layout.tiles(SURVEY))
    return Outcome("two concurrent runs of one survey partition", f"exit codes {failed}" if failed else None,
                   clear=not failed and complete, partial=leftovers(layout.root), lost=not complete)


def _tile_big(root: str) -> None:
    prepare(DataLayout(Path(root) / "data"))


def killed_mid_write(root: Path) -> Outcome:
    """SIGKILL while tiling a big scene: the earlier outputs survive and the next run sweeps up."""
    layout = DataLayout(root / "data")
    folder = make_good_survey(layout.raw_survey(SURVEY))
    prepare(layout)
    before = snapshot(layout.tiles(SURVEY))
    rows, cols = np.mgrid[0:3000, 0:3000]
    write_raster(folder / "image.tif", np.stack([cols % 256, rows % 256, (rows + cols) % 256]).astype(np.uint8))
    (folder / "dem.tif").unlink()
    (folder / "landslides.gpkg").unlink()
    child = multiprocessing.get_context("spawn").Process(target=_tile_big, args=(str(root),))
    child.start()
    staging = layout.tiles(SURVEY).parent
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(".tmp-" in p.name for p in staging.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)  # well into writing tiles
    assert child.pid is not None  # started above
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    # Killed before its swap, the old tiles must be there; after it (a fast machine), the new ones, whole.
    survived = "old tiles" if snapshot(layout.tiles(SURVEY)) == before else "new tiles"
    intact = survived == "old tiles" or _complete(layout.tiles(SURVEY))
    left = leftovers(layout.root)
    prepare(layout)  # the next run sweeps what the killed one left
    return Outcome("SIGKILL while tiling", f"killed with {len(left)} leftover(s) until the next run; {survived} kept",
                   clear=True, partial=leftovers(layout.root), lost=not intact)


def _complete(tiles: Path) -> bool:
    """Whether a tiles folder holds its index and exactly the image tiles it lists."""
    import pandas as pd

    index = tiles / "tiles.parquet"
    written = sorted(p.stem for p in (tiles / "image").glob("*.tif"))
    return index.is_file() and sorted(pd.read_parquet(index).tile_id) == written


def lost_tracking_store(root: Path) -> Outcome:
    """A model on disk whose run the (deleted, recreated) store lacks stops the check with its message."""
    import mlflow

    from landslide_pipeline.model_store import check_tracking_store

    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        pass
    models = root / "data" / "models"
    folder = models / "manual" / "linknet" / "fold_0"
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"mlflow_run_id": run.info.run_id, "members": []}))
    check_tracking_store(models, uri)
    (root / "mlflow.db").unlink()
    # A fresh process, as a Dagster run is: this one still holds the deleted database open.
    code = ("import sys; sys.path.insert(0, sys.argv[3]); from landslide_pipeline.model_store import "
            "check_tracking_store; check_tracking_store(__import__('pathlib').Path(sys.argv[1]), sys.argv[2])")
    done = subprocess.run([sys.executable, "-c", code, str(models), uri, str(Path(__file__).resolve().parents[1])],
                          capture_output=True, text=True, check=False)
    message = done.stderr.strip().splitlines()[-1] if done.returncode else None
    clear = message is not None and "TrackingStoreLostError" in message and "reregister" in message
    return Outcome("MLflow store deleted", message, clear=clear, partial=[], lost=not (folder / "model.json").is_file())


def corrupt_checkpoint(root: Path) -> Outcome:
    """A truncated checkpoint: set aside as .corrupt, training starts afresh and completes."""
    import pandas as pd
    import torch

    from landslide_pipeline.nn.segmenter import NormalizedNetwork
    from landslide_pipeline.training.dataset import TrainingSet
    from landslide_pipeline.training.loop import (
        FoldData,
        TrainingConfig,
        fit_normalization,
        init_model,
        train_segmentation,
    )

    rng = np.random.default_rng(0)
    images = rng.random((16, 3, 32, 32), dtype=np.float32)
    masks = (images[:, 0] > 0.6).astype(np.uint8)
    tiles = pd.DataFrame({"survey_id": "s", "tile_id": [f"t{i}" for i in range(16)], "fold": [0] * 12 + [1] * 4})
    data = FoldData(TrainingSet(images, masks, tiles, ["red", "green", "blue"], "float"), np.arange(12), np.arange(12, 16))
    checkpoint = root / "fold.pt"
    checkpoint.write_bytes(b"PK\x03\x04 truncated")
    model = NormalizedNetwork(fit_normalization(data), init_model("unet", 3, 0.125, seed=0))
    result = train_segmentation(model, data, TrainingConfig(epochs=1, batch_size=4), torch.device("cpu"),
                                checkpoint=checkpoint)
    set_aside = checkpoint.with_name(checkpoint.name + ".corrupt").is_file()
    return Outcome("truncated training checkpoint", None, clear=set_aside and len(result.history) == 1,
                   partial=[], lost=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="runs per process in the concurrency fault")
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as scratch:
        for i, case in enumerate(CASES):
            outcomes.append(run_case(case, Path(scratch) / f"case{i}"))
        faults = [lambda r: concurrent_runs(r, args.rounds), killed_mid_write, lost_tracking_store, corrupt_checkpoint]
        for i, fault in enumerate(faults):
            root = Path(scratch) / f"fault{i}"
            root.mkdir()
            outcomes.append(fault(root))
    for o in outcomes:
        verdict = "clear" if o.clear else "UNCLEAR"
        extra = (" PARTIAL " + ", ".join(o.partial) if o.partial else "") + (" LOST" if o.lost else "")
        print(f"{verdict:8} {o.case}{extra}\n         {(o.error or 'accepted')[:160]}")
    figures = {"cases": len(outcomes), "clear_errors": sum(o.clear for o in outcomes),
               "partial_outputs": sum(bool(o.partial) for o in outcomes), "data_lost": sum(o.lost for o in outcomes)}
    print(f"\n{figures['cases']} cases: {figures['clear_errors']} clear, {figures['partial_outputs']} with partial "
          f"outputs, {figures['data_lost']} with data lost")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
