"""Two training runs on one machine: side by side (no pool) vs queued one after the other (pool ``cpu``).

Usage: ``python bench/queued_training.py [--steps 40] [--architecture unet] [--width 0.125]``

Each run is a separate process training ``--architecture`` on random 256 x 256 tiles (batch 8),
with torch's threads set as a heavy step sets them (``defs.concurrency.claim_cores``: every core).
Measured: one run alone; two runs at once (what two concurrent Dagster runs do without the pool);
two runs queued, the second starting when the first ends (what the shipped instance config's one
``cpu`` slot does). The queue itself is Dagster's (``configs/dagster.yaml``); this bench measures
what it buys. The last line is JSON with images/s per run and the wall time of both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def worker(architecture: str, width: float, steps: int) -> None:
    """One training run: prints its images/s (after 3 warm-up steps)."""
    import torch

    from landslide_pipeline.training.loop import init_model
    from landslide_pipeline.training.performance import available_cores, configure_threads

    configure_threads(available_cores())
    model = init_model(architecture, 3, width, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.rand(8, 3, 256, 256), torch.randint(0, 2, (8, 256, 256))
    for step in range(steps + 3):
        if step == 3:
            start = time.perf_counter()
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    print(json.dumps({"images_per_second": 8 * steps / (time.perf_counter() - start)}))


def runs(args: argparse.Namespace, n: int, at_once: bool) -> tuple[list[float], float]:
    """Images/s of ``n`` runs, all at once or one after the other, and the wall time of all."""
    command = [sys.executable, __file__, "--worker", "--architecture", args.architecture, "--width", str(args.width),
               "--steps", str(args.steps)]
    start, outputs = time.perf_counter(), []
    if at_once:
        processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outputs = [p.communicate()[0] for p in processes]
    else:
        outputs = [subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout for _ in range(n)]
    rates = [json.loads(out.strip().splitlines()[-1])["images_per_second"] for out in outputs]
    return [round(r, 2) for r in rates], round(time.perf_counter() - start, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--architecture", default="unet")
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    if args.worker:
        worker(args.architecture, args.width, args.steps)
        return 0
    one, one_s = runs(args, 1, at_once=True)
    concurrent, concurrent_s = runs(args, 2, at_once=True)
    queued, queued_s = runs(args, 2, at_once=False)
    print(f"one run: {one[0]} images/s ({one_s} s)")
    print(f"two runs at once (no pool): {concurrent} images/s, both done in {concurrent_s} s")
    print(f"two runs queued (pool cpu, one slot): {queued} images/s, both done in {queued_s} s")
    print(json.dumps({"one_run_images_per_s": one[0], "two_at_once_images_per_s": concurrent,
                      "two_queued_images_per_s": queued, "two_at_once_wall_s": concurrent_s,
                      "two_queued_wall_s": queued_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
