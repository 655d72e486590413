import numpy as np
import pandas as pd
import pytest
import torch

from landslide_pipeline.nn.segmenter import BandNormalization
from landslide_pipeline.training.augment import AugmentationSpec
from landslide_pipeline.training.dataset import AugmentedTiles, TileArray, TileArrayWriter, TrainingSet


def small_set(n: int = 12, bands: list[str] | None = None) -> TrainingSet:
    bands = bands or ["red", "green", "blue", "slope"]
    rng = np.random.default_rng(0)
    x = rng.random((n, len(bands), 32, 32), dtype=np.float32)
    y = (rng.random((n, 32, 32)) > 0.8).astype(np.uint8)
    tiles = pd.DataFrame({"survey_id": "s", "tile_id": [f"t{i}" for i in range(n)], "fold": [-1, 0, 1] * (n // 3)})
    return TrainingSet(x, y, tiles, bands, "uint8")


def test_tile_array_reads_tiles_as_numpy_stored_them(tmp_path):
    array = np.arange(5 * 2 * 3 * 4, dtype=np.float32).reshape(5, 2, 3, 4)
    np.save(tmp_path / "a.npy", array)
    tiles = TileArray(tmp_path / "a.npy")
    assert tiles.shape == array.shape and len(tiles) == 5
    np.testing.assert_array_equal(tiles[3], array[3])
    np.testing.assert_array_equal(tiles[np.array([4, 0, 4])], array[[4, 0, 4]])
    np.testing.assert_array_equal(tiles[-1], array[-1])
    with pytest.raises(IndexError):
        tiles[5]


def test_tile_array_writer_streams_a_valid_npy_and_checks_the_count(tmp_path):
    with TileArrayWriter(tmp_path / "m.npy", (3, 4, 4), np.uint8) as writer:
        for i in range(3):
            writer.write(np.full((4, 4), i))
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy")[:, 0, 0], [0, 1, 2])
    with pytest.raises(ValueError, match="2 tiles written of 3"):
        with TileArrayWriter(tmp_path / "short.npy", (3, 4, 4), np.uint8) as writer:
            writer.write(np.zeros((4, 4)))
            writer.write(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        with TileArrayWriter(tmp_path / "bad.npy", (1, 4, 4), np.uint8) as writer:
            writer.write(np.zeros((5, 4)))


def test_a_saved_set_reopens_with_its_tiles_on_disk(tmp_path):
    samples = small_set()
    samples.save(tmp_path)
    loaded = TrainingSet.load(tmp_path)
    assert isinstance(loaded.images, TileArray) and isinstance(loaded.masks, TileArray)
    assert (loaded.bands, loaded.image_scaling, loaded.set_id) == (samples.bands, "uint8", samples.set_id)
    np.testing.assert_array_equal(loaded.images[[2, 5]], samples.images[[2, 5]])
    train, val = loaded.split(0)
    assert set(loaded.fold[train]) == {1} and set(loaded.fold[val]) == {0}
    assert set(loaded.fold[loaded.test_indices()]) == {-1}


def test_an_old_training_set_asks_to_be_rebuilt(tmp_path):
    np.savez(tmp_path / "samples.npz", x=np.zeros(1))
    with pytest.raises(FileNotFoundError, match="older format"):
        TrainingSet.load(tmp_path)


def test_augmented_tiles_are_fresh_every_epoch_and_reproducible():
    samples = small_set()
    normalization = BandNormalization([0.5] * 4, [0.25] * 4)
    spec = AugmentationSpec(draws=2, geometric_p=1.0, photometric_p=1.0)
    train = samples.split(0)[0]
    data = AugmentedTiles(samples, train, normalization, spec, seed=1)
    assert len(data) == 2 * len(train)  # two fresh variants of every tile per epoch
    data.set_epoch(1)
    first = [data.augment(*data.__getitems__([i]))[0] for i in range(len(data))]
    batched = data.augment(*data.__getitems__(list(range(len(data)))))[0]
    data.set_epoch(2)
    later = [data.augment(*data.__getitems__([i]))[0] for i in range(len(data))]
    data.set_epoch(1)
    again = [data.augment(*data.__getitems__([i]))[0] for i in range(len(data))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(torch.allclose(a[0], b, atol=1e-5) for a, b in zip(first, batched))  # alone or in a batch alike
    assert not any(torch.equal(a, b) for a, b in zip(first, later))
    assert not torch.equal(first[0], first[len(train)])  # the two variants of a tile differ


def test_augmented_tiles_are_normalised_and_terrain_is_not_jittered():
    samples = small_set()
    normalization = BandNormalization([0.5] * 4, [0.25] * 4)
    spec = AugmentationSpec(dihedral=False, geometric_p=0.0, photometric_p=1.0, noise_std=0.5)
    data = AugmentedTiles(samples, np.array([1]), normalization, spec, seed=0)
    x, y, draws = data.__getitems__([0])
    torch.testing.assert_close(x[0], torch.from_numpy(samples.images[1]))  # as stored
    xa, ya = data.augment(x, y, draws)
    normalised = (x[0] - 0.5) / 0.25
    torch.testing.assert_close(xa[0, 3], normalised[3])  # slope: normalised, never jittered
    assert not torch.allclose(xa[0, :3], normalised[:3])
    assert torch.equal(ya[0], torch.from_numpy(samples.masks[1]))


def labelled_survey(root, survey_id: str, bands: int, size: int = 32):
    """One survey of one tile, as tiling and labelling leave it on disk."""
    from landslide_pipeline.training.dataset import LabelledSurvey
    from landslide_pipeline_tests.conftest import write_raster

    (root / survey_id / "tiles" / "image").mkdir(parents=True)
    (root / survey_id / "masks").mkdir()
    write_raster(root / survey_id / "tiles" / "image" / "t0.tif", np.zeros((bands, size, size), np.uint8))
    write_raster(root / survey_id / "masks" / "t0.tif", np.zeros((1, size, size), np.uint8))
    return LabelledSurvey(root / survey_id / "tiles", root / survey_id / "masks",
                          pd.DataFrame({"survey_id": [survey_id], "tile_id": ["t0"]}))


@pytest.mark.parametrize("second, problem", [
    ({"bands": 4}, r"survey rgbn has 4 image band\(s\), survey rgb 3: one training set needs one band count"),
    ({"bands": 3, "size": 64}, "survey rgbn has 64x64 px tiles, survey rgb 32x32 px: tile every survey at one tile "
                               "size"),
])
def test_surveys_of_different_band_counts_or_tile_sizes_make_no_training_set(tmp_path, second, problem):
    from landslide_pipeline.training.dataset import build_training_set

    surveys = [labelled_survey(tmp_path, "rgb", 3), labelled_survey(tmp_path, "rgbn", **second)]
    folds = pd.DataFrame({"survey_id": ["rgb", "rgbn"], "tile_id": ["t0", "t0"], "fold": [0, 1]})
    (tmp_path / "set").mkdir()
    with pytest.raises(ValueError, match=problem):
        build_training_set(surveys, folds, use_terrain=False, directory=tmp_path / "set")
