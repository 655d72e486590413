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

    Folds are stratified: groups that hold landslide pixels are dealt out first, largest
    landslide area first, each to the fold with the least landslide area so far; then the groups
    without landslides, largest first, each to the fold with the fewest tiles. Ties go to the
    lower fold after a shuffle with ``seed``. So, whenever there are at least ``n_folds`` groups
    with landslides, every validation fold holds some, and tile counts stay close.

    Args:
        tiles: Needs survey_id, tile_id, row_off and col_off columns; ``landslide_fraction``
            (optional) drives the stratification.
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
    positive = tiles["landslide_fraction"] if "landslide_fraction" in tiles else pd.Series(0.0, tiles.index)
    stats = pd.DataFrame({"group": groups.to_numpy(), "tiles": 1, "landslide": positive.to_numpy()})
    stats = stats.groupby("group", sort=True).sum()
    if len(stats) < n_folds:
        raise ValueError(
            f"only {len(stats)} {strategy} groups of tiles for {n_folds} folds; use fewer folds, "
            "smaller blocks, or more data"
        )
    stats = stats.iloc[np.random.default_rng(seed).permutation(len(stats))]
    tile_load, landslide_load = np.zeros(n_folds), np.zeros(n_folds)
    fold_of_group: dict[str, int] = {}
    with_landslides = stats[stats["landslide"] > 0].sort_values("landslide", ascending=False, kind="stable")
    without = stats[stats["landslide"] <= 0].sort_values("tiles", ascending=False, kind="stable")
    for group, row in with_landslides.iterrows():
        fold = int(np.lexsort((tile_load, landslide_load))[0])
        fold_of_group[group] = fold
        landslide_load[fold] += row["landslide"]
        tile_load[fold] += row["tiles"]
    for group, row in without.iterrows():
        fold = int(np.argmin(tile_load))
        fold_of_group[group] = fold
        tile_load[fold] += row["tiles"]
    return tiles.assign(group=groups.to_numpy(), fold=groups.map(fold_of_group).astype(int).to_numpy())
