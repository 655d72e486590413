import pandas as pd
import pytest

from landslide_pipeline.training.folds import TEST_FOLD, assign_folds


def grid_tiles(n_side: int, tile: int = 64, survey: str = "s") -> pd.DataFrame:
    rows = [dict(survey_id=survey, tile_id=f"r{r:06d}_c{c:06d}", row_off=r, col_off=c)
            for r in range(0, n_side * tile, tile) for c in range(0, n_side * tile, tile)]
    return pd.DataFrame(rows)


def test_spatial_folds_keep_blocks_whole_and_balanced():
    tiles = grid_tiles(8)
    folds = assign_folds(tiles, n_folds=4, seed=1, strategy="spatial", block_px=128)
    assert folds.groupby("group")["fold"].nunique().max() == 1
    sizes = folds["fold"].value_counts()
    assert sorted(sizes.index) == [0, 1, 2, 3]
    assert sizes.max() - sizes.min() <= 4  # at most one 2x2 block apart


def test_neighbouring_tiles_of_a_block_share_a_fold():
    folds = assign_folds(grid_tiles(4), n_folds=2, seed=0, strategy="spatial", block_px=128).set_index("tile_id")
    assert folds.loc["r000000_c000000", "fold"] == folds.loc["r000064_c000064", "fold"]


def test_folds_are_deterministic_for_a_seed_and_change_with_it():
    tiles = grid_tiles(6)
    a = assign_folds(tiles, 3, seed=7, strategy="random")
    b = assign_folds(tiles, 3, seed=7, strategy="random")
    c = assign_folds(tiles, 3, seed=8, strategy="random")
    assert a["fold"].tolist() == b["fold"].tolist()
    assert a["fold"].tolist() != c["fold"].tolist()


def test_too_few_groups_for_the_folds_raises():
    with pytest.raises(ValueError, match="groups"):
        assign_folds(grid_tiles(2), n_folds=5, strategy="spatial", block_px=128)


def test_unknown_strategy_raises():
    with pytest.raises(ValueError, match="strategy"):
        assign_folds(grid_tiles(2), n_folds=2, strategy="checkerboard")


def test_tiles_without_a_scene_position_are_grouped_alone():
    tiles = grid_tiles(2)
    tiles[["row_off", "col_off"]] = -1
    folds = assign_folds(tiles, n_folds=4, seed=0, strategy="spatial", block_px=128)
    assert folds["group"].nunique() == 4
    assert sorted(folds["fold"]) == [0, 1, 2, 3]


def test_folds_are_stratified_so_every_fold_holds_landslides():
    tiles = grid_tiles(8).assign(landslide_fraction=0.0)
    # Landslides only in 6 of the 16 spatial blocks (block rows 0-1, block columns 0-2).
    hits = (tiles["row_off"] < 256) & (tiles["col_off"] < 320)
    tiles.loc[hits, "landslide_fraction"] = 0.2
    for seed in range(5):
        folds = assign_folds(tiles, n_folds=5, seed=seed, strategy="spatial", block_px=128)
        assert (folds.groupby("fold")["landslide_fraction"].sum() > 0).all()
        sizes = folds["fold"].value_counts()
        assert sizes.max() - sizes.min() <= 8


def test_test_split_holds_out_whole_groups_with_and_without_landslides():
    tiles = grid_tiles(8).assign(landslide_fraction=0.0)
    tiles.loc[(tiles["row_off"] < 256) & (tiles["col_off"] < 320), "landslide_fraction"] = 0.2
    folds = assign_folds(tiles, n_folds=3, seed=0, strategy="spatial", block_px=128, test_fraction=0.2)
    test = folds[folds["fold"] == TEST_FOLD]
    assert test["group"].nunique() == 1 + 2  # 20 % of 6 landslide blocks, 20 % of 10 others
    assert test["landslide_fraction"].sum() > 0
    assert not set(test["group"]) & set(folds.loc[folds["fold"] >= 0, "group"])
    assert (folds[folds["fold"] >= 0].groupby("fold")["landslide_fraction"].sum() > 0).all()


def test_test_split_never_starves_the_folds():
    tiles = grid_tiles(4).assign(landslide_fraction=0.0)
    tiles.loc[tiles["row_off"] < 128, "landslide_fraction"] = 0.1  # 2 landslide blocks
    folds = assign_folds(tiles, n_folds=2, seed=0, strategy="spatial", block_px=128, test_fraction=0.5)
    assert set(folds["fold"]) == {TEST_FOLD, 0, 1}
    assert folds.loc[folds["fold"] == TEST_FOLD, "landslide_fraction"].sum() == 0


def test_pieces_recut_from_one_precut_tile_share_a_fold():
    tiles = grid_tiles(2)
    tiles[["row_off", "col_off"]] = -1
    tiles["source"] = ["a", "a", "b", "c"]
    folds = assign_folds(tiles, n_folds=3, seed=0, strategy="spatial", block_px=128)
    assert folds["group"].nunique() == 3
    assert folds.loc[0, "fold"] == folds.loc[1, "fold"]


def test_a_test_survey_is_the_whole_test_split():
    train, held = grid_tiles(12, survey="train"), grid_tiles(3, survey="official-validation")
    tiles = pd.concat([train, held], ignore_index=True).sample(frac=1, random_state=0)
    folds = assign_folds(tiles, 5, seed=0, block_px=128, test_fraction=0.3,
                         test_surveys=("official-validation",))
    assert list(folds.index) == list(tiles.index)  # the caller's row order is kept
    is_test = folds["fold"] == TEST_FOLD
    assert (is_test == (folds["survey_id"] == "official-validation")).all()  # test_fraction ignored
    assert set(folds.loc[~is_test, "fold"]) == set(range(5))


def test_inherited_folds_keep_the_other_sources_assignment_on_common_tiles():
    from landslide_pipeline.training.folds import inherit_folds

    manual = assign_folds(grid_tiles(8), 4, seed=1, block_px=128, test_fraction=0.2)
    obia = grid_tiles(8).assign(landslide_fraction=0.5).iloc[::-1].head(50)  # another order, a subset
    inherited = inherit_folds(obia, manual)
    assert len(inherited) == 50
    expected = manual.set_index("tile_id").loc[inherited["tile_id"], "fold"].to_numpy()
    assert (inherited["fold"].to_numpy() == expected).all()
    assert (inherited["landslide_fraction"] == 0.5).all()  # the tiles' own columns are kept
    with pytest.raises(ValueError, match="no tile in common"):
        inherit_folds(grid_tiles(2, survey="elsewhere"), manual)
