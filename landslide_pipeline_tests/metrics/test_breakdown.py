import numpy as np
import pytest

from landslide_pipeline.metrics.breakdown import (
    complexity_classes,
    complexity_scores,
    edge_density,
    example_tiles,
    size_class_recall,
)


def test_landslides_are_counted_by_size_and_detected_when_half_their_pixels_are_found():
    reference = np.zeros((2, 64, 64), np.uint8)
    reference[0, 2:6, 2:6] = 1  # 16 px: small
    reference[0, 10:30, 10:30] = 1  # 400 px: medium
    reference[1, 0:50, 0:50] = 1  # 2,500 px: large
    predicted = np.zeros_like(reference)
    predicted[0, 10:30, 10:21] = 1  # 220 of the medium one's 400 px: detected
    predicted[1, 0:20, 0:50] = 1  # 1,000 of 2,500: missed
    table = size_class_recall(reference, predicted).set_index("size_class")
    assert table["landslides"].tolist() == [1, 1, 1]
    assert table["detected"].tolist() == [0, 1, 0]
    assert table.loc["medium", "pixel_recall"] == pytest.approx(220 / 400)
    assert table.loc["large", "pixel_recall"] == pytest.approx(0.4)


def test_a_landslide_touching_diagonally_is_one_landslide():
    reference = np.zeros((1, 8, 8), np.uint8)
    reference[0, 1, 1] = reference[0, 2, 2] = 1
    assert size_class_recall(reference, reference)["landslides"].sum() == 1


def test_busier_tiles_have_higher_edge_density_and_are_scored_apart():
    rng = np.random.default_rng(0)
    flat = np.full((3, 3, 32, 32), 0.5)
    busy = rng.random((3, 3, 32, 32))
    images = np.concatenate([flat, busy, flat * 0.9])
    images[0, :, :2, :2] = np.nan  # no data does not count as an edge
    density = edge_density(images)
    assert density[3:6].min() > density[[0, 1, 2, 6, 7, 8]].max()
    reference = np.zeros((9, 32, 32), np.uint8)
    reference[:, 8:16, 8:16] = 1
    predicted = reference.copy()
    predicted[3:6] = 0  # the model fails on busy backgrounds only
    table = complexity_scores(reference, predicted, density).set_index("background")
    assert table.loc["complex", "recall"] == 0.0 and table.loc["simple", "recall"] == 1.0
    assert table["n_tiles"].tolist() == [3, 3, 3]


def size_tiles() -> np.ndarray:
    """Eight 64 x 64 tiles: 0 and 5 small landslides only, 2 a large one only, 4 a large one and a
    small one, 6 a medium one, 1, 3 and 7 none."""
    reference = np.zeros((8, 64, 64), np.uint8)
    reference[0, 2:6, 2:6] = reference[0, 20:24, 20:24] = 1  # two 16 px: small
    reference[5, 30:40, 30:40] = 1  # 100 px: small
    reference[2, 0:50, 0:50] = 1  # 2,500 px: large
    reference[4, 0:48, 0:48] = 1  # 2,304 px: large
    reference[4, 60:63, 60:63] = 1  # 9 px: small
    reference[6, 10:30, 10:30] = 1  # 400 px: medium
    return reference


def test_example_tiles_pick_tiles_holding_a_landslide_of_each_size_dominant_ones_first():
    reference = size_tiles()
    examples = example_tiles(reference, np.arange(8.0), per_class=2)
    assert list(examples)[:3] == ["small landslides", "medium landslides", "large landslides"]
    # 2 holds only a large landslide: first; 4 holds a small one too; 0 and 5 (only small) never
    assert examples["large landslides"].tolist() == [2, 4]
    assert examples["medium landslides"].tolist() == [6]  # the only one: fewer than per_class
    # 0 and 5 are all small, 4 only 9 of 2,313 px: 4 is not among the two
    assert sorted(examples["small landslides"].tolist()) == [0, 5]
    assert examples["small landslides"].dtype == np.int64
    assert sorted(example_tiles(reference, np.arange(8.0), per_class=3)["small landslides"].tolist()) == [0, 4, 5]
    assert example_tiles(reference, np.arange(8.0), per_class=3)["small landslides"][2] == 4


def test_example_tiles_leave_out_absent_classes():
    reference = np.zeros((6, 64, 64), np.uint8)
    reference[1, 0:50, 0:50] = 1  # large only
    examples = example_tiles(reference, np.arange(6.0))
    assert list(examples) == ["large landslides", "simple background", "complex background"]
    assert examples["large landslides"].tolist() == [1]
    # two tiles: no complex class (the thirds are 1, 1 and 0 tiles)
    assert list(example_tiles(reference[:2], np.arange(2.0))) == ["large landslides", "simple background"]


def test_example_backgrounds_are_the_extreme_densities_landslide_tiles_first():
    reference = np.zeros((9, 16, 16), np.uint8)
    density = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6])
    # classes by density: simple {1, 5, 3}, moderate {7, 0, 8}, complex {4, 6, 2}
    assert [c.tolist() for c in complexity_classes(density).values()] == [[1, 5, 3], [7, 0, 8], [4, 6, 2]]
    reference[[5, 3, 4, 6, 2], 0, 0] = 1
    examples = example_tiles(reference, density, per_class=2)
    assert examples["simple background"].tolist() == [5, 3]  # 1 is the simplest but holds no landslide
    assert examples["complex background"].tolist() == [2, 6]  # highest density first
    reference[3, 0, 0] = 0  # only 5 of the simple class holds one: topped up by the simplest other
    assert example_tiles(reference, density, per_class=2)["simple background"].tolist() == [5, 1]
    reference[:] = 0  # no landslides: the extremes, and no size class
    examples = example_tiles(reference, density, per_class=3)
    assert {k: v.tolist() for k, v in examples.items()} == {"simple background": [1, 5, 3],
                                                             "complex background": [2, 6, 4]}
    density[2] = np.nan  # no density: never an example
    assert 2 not in example_tiles(reference, density)["complex background"]


def test_example_tiles_are_deterministic_and_the_seed_orders_equal_examples():
    reference = np.zeros((12, 16, 16), np.uint8)
    reference[:, 0:4, 0:4] = 1  # every tile: one small landslide
    density = np.linspace(0, 1, 12)
    first = example_tiles(reference, density, per_class=3, seed=4)
    again = example_tiles(reference, density, per_class=3, seed=4)
    assert list(first) == list(again) and all(np.array_equal(first[k], again[k]) for k in first)
    draws = {tuple(example_tiles(reference, density, per_class=3, seed=s)["small landslides"]) for s in range(10)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="at least 1"):
        example_tiles(reference, density, per_class=0)
    with pytest.raises(ValueError, match="density"):
        example_tiles(reference, density[:5])
