"""k-fold assignment of tiles, randomly or in spatial groups.

With ``strategy="spatial"`` neighbouring tiles are grouped into square blocks
(``block_tiles`` x ``block_tiles`` tiles) and a whole block goes to one fold, so overlapping or
adjacent tiles, which share landslides, cannot sit on both sides of a train/validation split.
Tiles whose position in a scene is unknown (pre-cut data sets: ``row_off`` or ``col_off`` < 0)
each form a group of their own.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

FoldStrategy = Literal["random", "spatial"]


def tile_groups(tiles: pd.DataFrame, strategy: FoldStrategy, block_px: int) -> pd.Series:
    """A group label per tile: the tile itself (random) or its spatial block (spatial)."""
    if strategy == "random":
        return tiles["survey_id"] + ":" + tiles["tile_id"]
    if strategy == "spatial":
        blocks = (tiles["survey_id"] + ":" + (tiles["row_off"] // block_px).astype(str)
                  + ":" + (tiles["col_off"] // block_px).astype(str))
        unplaced = (tiles["row_off"] < 0) | (tiles["col_off"] < 0)
        return blocks.where(~unplaced, tiles["survey_id"] + ":" + tiles["tile_id"])
    raise ValueError(f"unknown fold strategy {strategy!r}; use 'random' or 'spatial'")


def assign_folds(
    tiles: pd.DataFrame,
    n_folds: int,
    seed: int = 0,
    strategy: FoldStrategy = "spatial",
    block_px: int = 256,
) -> pd.DataFrame:
    """Assigns every tile to one of ``n_folds`` folds, keeping groups whole and folds balanced.

    Groups are shuffled with ``seed``, then taken largest first and each put into the fold that
    holds the fewest tiles so far, so fold sizes differ by at most one group.

    Args:
        tiles: Needs survey_id, tile_id, row_off and col_off columns.
        n_folds: Number of folds (k).
        seed: Seed of the shuffle.
        strategy: "random" (tile by tile) or "spatial" (blocks of neighbouring tiles).
        block_px: Side of a spatial block in pixels.

    Returns:
        A copy of ``tiles`` with ``group`` and ``fold`` columns.

    Raises:
        ValueError: fewer groups than folds.
    """
    groups = tile_groups(tiles, strategy, block_px)
    sizes = groups.value_counts(sort=False)
    if len(sizes) < n_folds:
        raise ValueError(
            f"only {len(sizes)} {strategy} groups of tiles for {n_folds} folds; use fewer folds, "
            "smaller blocks, or more data"
        )
    order = np.random.default_rng(seed).permutation(len(sizes))
    shuffled = sizes.iloc[order]
    shuffled = shuffled.iloc[np.argsort(-shuffled.to_numpy(), kind="stable")]
    load = np.zeros(n_folds, dtype=int)
    fold_of_group: dict[str, int] = {}
    for group, size in shuffled.items():
        fold = int(np.argmin(load))
        fold_of_group[group] = fold
        load[fold] += size
    return tiles.assign(group=groups.to_numpy(), fold=groups.map(fold_of_group).astype(int).to_numpy())
