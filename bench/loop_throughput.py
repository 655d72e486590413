"""Training images/s of the data path: the bare step vs the training loop, with and without augmentation.

Usage: ``python bench/loop_throughput.py [--architecture linknet] [--width 0.25] [--tiles 1024]
[--epochs 5] [--batch 16]``

On ``--tiles`` random 3-band 128 x 128 tiles held in memory, with the ``cpu`` profile's optimiser,
loss and batch, it times one epoch at a time of:

* ``step``: what the loop did before online augmentation: batches fancy-indexed from an array of
  ready tensors, then forward, loss, backward, optimiser step (no per-epoch validation);
* ``loop, no augmentation``: ``training.loop.train_segmentation`` with ``AugmentationSpec.none()``
  (tiles read per batch, normalised in the model's data path, draws made, nothing altered);
* ``loop, cpu profile``: the same with the profile's augmentation.

The loop's images/s are its own report (training time only, validation excluded). The median of
the epochs after the first is shown. The last line is JSON with images/s per row and the loop's
share of the bare step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="linknet")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--tiles", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    from landslide_pipeline.nn.segmenter import NormalizedNetwork
    from landslide_pipeline.training.augment import AugmentationSpec
    from landslide_pipeline.training.dataset import TrainingSet
    from landslide_pipeline.training.loop import FoldData, fit_normalization, init_model, train_segmentation
    from landslide_pipeline.training.losses import make_loss
    from landslide_pipeline.training.performance import retain_freed_memory
    from landslide_pipeline.training.profiles import resolve_profile

    retain_freed_memory()
    rng = np.random.default_rng(0)
    n_val = 32
    x = rng.random((args.tiles + n_val, 3, 128, 128), dtype=np.float32)
    y = (rng.random((args.tiles + n_val, 128, 128)) < 0.05).astype(np.uint8)
    tiles = pd.DataFrame({"survey_id": "s", "tile_id": [f"t{i}" for i in range(len(x))],
                          "fold": [1] * args.tiles + [0] * n_val})
    samples = TrainingSet(x, y, tiles, ["red", "green", "blue"], "float")
    data = FoldData(samples, np.arange(args.tiles), np.arange(args.tiles, args.tiles + n_val))
    config = replace(resolve_profile("cpu", width=args.width).training, epochs=args.epochs, batch_size=args.batch)
    device = torch.device("cpu")

    def bare_step() -> float:
        network = init_model(args.architecture, 3, args.width, 0).to(memory_format=torch.channels_last)
        optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        criterion = make_loss(config.loss)
        rates = []
        for _ in range(args.epochs):
            started = time.perf_counter()
            for idx in np.array_split(rng.permutation(args.tiles), args.tiles // args.batch):
                batch = torch.from_numpy(x[idx]).to(memory_format=torch.channels_last)
                loss = criterion(network(batch), torch.from_numpy(y[idx]).long())
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            rates.append(args.tiles / (time.perf_counter() - started))
        return statistics.median(rates[1:] or rates)

    def loop(augmentation: AugmentationSpec) -> float:
        model = NormalizedNetwork(fit_normalization(data), init_model(args.architecture, 3, args.width, 0))
        result = train_segmentation(model, data, replace(config, augmentation=augmentation), device)
        rates = [r.images_per_second for r in result.history]
        return statistics.median(rates[1:] or rates)

    rows = {"step": bare_step(), "loop, no augmentation": loop(AugmentationSpec.none()),
            "loop, cpu profile": loop(config.augmentation)}
    for name, rate in rows.items():
        print(f"{name:<24} {rate:8.1f} images/s  ({rate / rows['step']:.0%} of the bare step)")
    print(json.dumps({"architecture": args.architecture, "width": args.width, "batch": args.batch,
                      "threads": torch.get_num_threads(), "images_per_second": {k: round(v, 1) for k, v in rows.items()},
                      "share_of_step": {k: round(v / rows["step"], 3) for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
