import numpy as np
import pandas as pd
import pytest
import torch

from landslide_pipeline.training.augment import AugmentationSpec
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.experiments import (
    Variant,
    band_variants,
    run_variant_experiment,
    size_variants,
    variant_split,
)
from landslide_pipeline.training.loop import TrainingConfig


def terrain_only_signal(n_tiles: int, seed: int = 0) -> TrainingSet:
    """Tiles whose landslide square shows only in the slope band: the image is noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.4, 0.1, (n_tiles, 4, 32, 32)).astype(np.float32)
    y = np.zeros((n_tiles, 32, 32), np.uint8)
    for i in range(n_tiles):
        r, c = rng.integers(0, 20, 2)
        y[i, r:r + 10, c:c + 10] = 1
    x[:, 3] = 0.1 + 0.6 * y
    folds = np.array([-1] * 4 + [0, 1] * ((n_tiles - 4) // 2))
    tiles = pd.DataFrame({"survey_id": "s", "tile_id": [str(i) for i in range(n_tiles)], "fold": folds})
    return TrainingSet(x, y, tiles, ["red", "green", "blue", "slope"], "float")


def test_variants():
    assert band_variants(["red", "green", "blue", "slope"]) == [
        Variant("rgb", ("red", "green", "blue")), Variant("rgb-slope", ("red", "green", "blue", "slope"))]
    assert band_variants(["red", "green", "blue"]) == [Variant("rgb", ("red", "green", "blue"))]
    rgb = ("red", "green", "blue")
    assert band_variants([*rgb, "elevation", "slope", "hillshade", "relief"]) == [
        Variant("rgb", rgb), Variant("rgb-dem", (*rgb, "elevation")), Variant("rgb-slope", (*rgb, "slope")),
        Variant("rgb-terrain", (*rgb, "elevation", "slope", "hillshade", "relief"))]
    assert [v.max_train_tiles for v in size_variants(["red"], [200, 100, 200])] == [100, 200]
    with pytest.raises(ValueError, match="positive"):
        size_variants(["red"], [0])


def test_a_size_variant_trains_on_that_many_tiles_of_the_other_folds():
    samples = terrain_only_signal(44)
    train_idx, val_idx, n = variant_split(samples, 0, Variant("5 tiles", tuple(samples.bands), 5), seed=0)
    assert n == 5 and len(train_idx) == 5 and (samples.fold[train_idx] == 1).all()
    again, _, _ = variant_split(samples, 0, Variant("5 tiles", tuple(samples.bands), 5), seed=0)
    assert (again == train_idx).all()
    everything, _, n_all = variant_split(samples, 0, Variant("all", tuple(samples.bands), 1000), seed=0)
    assert n_all == 20 and set(everything) == set(samples.split(0)[0])


def test_terrain_helps_when_only_terrain_carries_the_landslides():
    samples = terrain_only_signal(44)
    config = TrainingConfig(epochs=6, batch_size=8, learning_rate=3e-3, augmentation=AugmentationSpec.none())
    seen = []
    rows = run_variant_experiment(samples, band_variants(samples.bands), ["unet"], 2, 0.125, config,
                                  torch.device("cpu"), on_model=lambda v, a, f: seen.append((v.name, a, f)))
    assert seen == [("rgb", "unet", 0), ("rgb", "unet", 1), ("rgb-slope", "unet", 0), ("rgb-slope", "unet", 1)]
    table = pd.DataFrame(rows)
    assert len(table) == 8 and set(table["split"]) == {"validation", "test"}
    assert table["threshold"].between(0, 1, inclusive="neither").all()
    assert (table["tp"] + table["fp"] + table["fn"] + table["tn"] == table["n_tiles"] * 32 * 32).all()
    f1 = table[table["split"] == "test"].groupby("variant")["f1"].mean()
    assert f1["rgb-slope"] > f1["rgb"] + 0.3, f1


def test_the_size_study_trains_on_the_default_input_set():
    from landslide_pipeline.training.experiments import size_study_bands

    rgb = ["red", "green", "blue"]
    assert size_study_bands([*rgb, "elevation", "slope"]) == [*rgb, "slope"]
    assert size_study_bands(rgb) == rgb
