import numpy as np
import pytest

from landslide_pipeline.metrics.breakdown import complexity_scores, edge_density, size_class_recall


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
