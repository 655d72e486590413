"""k-fold assignment of tiles, randomly or in spatial groups.

With ``strategy="spatial"`` neighbouring tiles are grouped into square blocks
(``block_tiles`` x ``block_tiles`` tiles) and a whole block goes to one fold, so overlapping or
adjacent tiles, which share landslides, cannot sit on both sides of a train/validation split.
Tiles whose position in a scene is unknown (pre-cut data sets: ``row_off`` or ``col_off`` < 0)
are grouped by the data-set tile they were cut from (``source``), since pieces re-cut from one
tile may overlap, or else each form a group of their own.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

FoldStrategy = Literal["random", "spatial"]
#: Fold number of the held-out test split.
TEST_FOLD = -1


def tile_groups(tiles: pd.DataFrame, strategy: FoldStrategy, block_px: int) -> pd.Series:
    """A group label per tile: the tile itself (random) or its spatial block (spatial)."""
    if strategy == "random":
        return tiles["survey_id"] + ":" + tiles["tile_id"]
    if strategy == "spatial":
        blocks = (tiles["survey_id"] + ":" + (tiles["row_off"] // block_px).astype(str)
                  + ":" + (tiles["col_off"] // block_px).astype(str))
        unplaced = (tiles["row_off"] < 0) | (tiles["col_off"] < 0)
        origin = tiles["source"].fillna(tiles["tile_id"]) if "source" in tiles else tiles["tile_id"]
        return blocks.where(~unplaced, tiles["survey_id"] + ":" + origin.astype(str))
    raise ValueError(f"unknown fold strategy {strategy!r}; use 'random' or 'spatial'")


def assign_folds(
    tiles: pd.DataFrame,
    n_folds: int,
    seed: int = 0,
    strategy: FoldStrategy = "spatial",
    block_px: int = 256,
    test_fraction: float = 0.0,
    test_surveys: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Assigns every tile to one of ``n_folds`` folds, keeping groups whole and folds balanced.

    Tiles of ``test_surveys`` (surveys whose role is "test", e.g. a data set's official
    validation split) form the test split, fold ``TEST_FOLD`` (-1), all of them and nothing
    else: ``test_fraction`` is then ignored. Otherwise, when ``test_fraction`` > 0, that share of the groups with landslides and of the groups
    without (rounded, at least one group when any is asked) is held out as the test split, fold
    ``TEST_FOLD`` (-1), chosen at random with ``seed``; it never takes the groups the folds need.

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
        test_fraction: Share of groups held out as the test split (0 for none).
        test_surveys: Surveys held out whole as the test split.

    Returns:
        A copy of ``tiles`` with ``group`` and ``fold`` columns.

    Raises:
        ValueError: fewer groups than folds.
    """
    held_out = tiles["survey_id"].isin(list(test_surveys)).to_numpy()
    if held_out.any():
        folded = assign_folds(tiles[~held_out], n_folds, seed, strategy, block_px)
        test = tiles[held_out].assign(group=tiles.loc[held_out, "survey_id"] + ":test", fold=TEST_FOLD)
        return pd.concat([folded, test]).loc[tiles.index]
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
    fold_of_group = {group: TEST_FOLD for group in _test_groups(stats, n_folds, test_fraction)}
    stats = stats.drop(index=list(fold_of_group))
    tile_load, landslide_load = np.zeros(n_folds), np.zeros(n_folds)
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


def _test_groups(stats: pd.DataFrame, n_folds: int, test_fraction: float) -> list[str]:
    """The groups held out for testing: a share of those with and of those without landslides."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if test_fraction == 0:
        return []
    positive = stats[stats["landslide"] > 0]
    negative = stats[stats["landslide"] <= 0]
    chosen: list[str] = []
    # Every fold needs a group with landslides, so the test split may take only the spare ones.
    for part, spare in ((positive, len(positive) - n_folds), (negative, len(negative))):
        wanted = max(1, round(test_fraction * len(part))) if len(part) else 0
        chosen += list(part.index[: max(0, min(wanted, spare))])
    if len(stats) - len(chosen) < n_folds:
        raise ValueError(f"{len(stats)} groups cannot make {n_folds} folds and a test split; lower test_fraction")
    return chosen


def inherit_folds(tiles: pd.DataFrame, assigned: pd.DataFrame) -> pd.DataFrame:
    """The tiles of ``tiles`` that ``assigned`` (another label source's fold table) holds, with
    that table's group and fold: two training sets over the same tiles then share their folds
    and test split, so their models can be compared tile for tile.

    Raises:
        ValueError: no tile in common.
    """
    keys = ["survey_id", "tile_id"]
    shared = tiles.drop(columns=["group", "fold"], errors="ignore").merge(
        assigned[keys + ["group", "fold"]], on=keys, how="inner", validate="one_to_one")
    if shared.empty:
        raise ValueError("no tile in common with the fold table to inherit")
    return shared
