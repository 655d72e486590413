import math

import numpy as np
import pytest

from landslide_pipeline.labelling.features import object_features, vegetation_index_name
from landslide_pipeline.labelling.regions import region_statistics
from landslide_pipeline.labelling.texture import CooccurrenceAccumulator, quantise_relative

LEVELS = 8


def glcm(objects: np.ndarray, grey: np.ndarray, n: int) -> dict[str, np.ndarray]:
    accumulator = CooccurrenceAccumulator(n, LEVELS)
    accumulator.add(objects, grey, False, False)
    return accumulator.features()


def test_glcm_of_flat_and_checkerboard_objects():
    objects = np.zeros((8, 16), dtype=np.int64)
    objects[:, 8:] = 1
    grey = np.full((8, 16), 3, dtype=np.uint8)
    grey[:, 8:] = 2 + 3 * (np.indices((8, 8)).sum(axis=0) % 2)  # levels 2 and 5 alternating
    features = glcm(objects, grey, 2)
    assert features["glcm_contrast"].tolist() == [0.0, 9.0]
    assert np.allclose(features["glcm_homogeneity"], [1.0, 0.1])
    # Object 1 only ever pairs (2, 5) and (5, 2), equally often: entropy ln 2.
    assert np.allclose(features["glcm_entropy"], [0.0, math.log(2)])


def test_pairs_across_objects_or_nodata_do_not_count():
    objects = np.array([[0, 1, -1, 2]])
    grey = np.array([[0, 7, 7, 7]], dtype=np.uint8)
    features = glcm(objects, grey, 3)
    assert np.isnan(features["glcm_contrast"]).all()  # single-pixel objects have no pair


def test_windows_with_a_halo_count_every_pair_once():
    rng = np.random.default_rng(1)
    objects = np.repeat(np.repeat(np.arange(6).reshape(2, 3), 10, axis=0), 10, axis=1)  # 20 x 30, six objects
    grey = rng.integers(0, LEVELS, size=(20, 30)).astype(np.uint8)
    whole = glcm(objects, grey, 6)
    windowed = CooccurrenceAccumulator(6, LEVELS)
    for row, col in ((0, 0), (0, 13), (9, 0), (9, 13)):
        rows, cols = slice(max(row - 1, 0), row + 11 if row else 9), slice(max(col - 1, 0), col + 17 if col else 13)
        windowed.add(objects[rows, cols], grey[rows, cols], row > 0, col > 0)
    for name, values in windowed.features().items():
        assert np.allclose(values, whole[name]), name


def test_relative_grey_levels_ignore_shading():
    brightness = np.array([[100.0, 120.0, 80.0]])
    lit = quantise_relative(brightness, np.full_like(brightness, 100.0), 32)
    shaded = quantise_relative(0.5 * brightness, np.full_like(brightness, 50.0), 32)
    assert lit.tolist() == shaded.tolist() == [[16, 19, 13]]


def features_of(labels: np.ndarray, image: np.ndarray, names: tuple[str, ...], elevation=None, slope=None):
    channels = list(image)
    if elevation is not None:
        channels += [slope, elevation]
        names_all = names + ("slope", "elevation")
    else:
        names_all = names
    n = int(labels.max()) + 1
    graph = region_statistics(labels, np.stack(channels), names_all, n, elevation)
    texture = {k: np.zeros(n) for k in ("glcm_contrast", "glcm_homogeneity", "glcm_entropy")}
    return object_features(graph, names, (0.5, 0.5), texture, elevation is not None)


def test_shape_features_tell_a_disc_from_a_strip():
    rows, cols = np.mgrid[0:60, 0:100]
    labels = np.zeros((60, 100), dtype=np.int64)
    labels[(rows - 30) ** 2 + (cols - 25) ** 2 <= 20**2] = 1
    labels[25:35, 55:95] = 2  # 40 x 10 px strip
    image = np.full((3, 60, 100), 100.0, dtype=np.float32)
    table = features_of(labels, image, ("red", "green", "blue"))
    disc, strip = table.iloc[1], table.iloc[2]
    assert disc["area_m2"] == pytest.approx(disc["n_pixels"] * 0.25)
    assert disc["elongation"] == pytest.approx(1.0, abs=0.05)
    assert strip["elongation"] == pytest.approx(4.0, rel=0.05)
    # Axes of the ellipse with the same second moments: a disc's diameter is 40 px at 0.5 m.
    assert disc["length_m"] == pytest.approx(20.0, rel=0.02) and disc["width_m"] == pytest.approx(20.0, rel=0.02)
    assert disc["compactness"] > strip["compactness"]


def test_spectral_and_vegetation_features():
    labels = np.repeat(np.array([[0, 1]]), 4, axis=0).repeat(4, axis=1)
    image = np.zeros((3, 4, 8), dtype=np.float32)
    image[:, :, :4] = np.array([60, 120, 40])[:, None, None]   # green vegetation
    image[:, :, 4:] = np.array([150, 140, 110])[:, None, None]  # warm bare soil
    table = features_of(labels, image, ("red", "green", "blue"))
    assert table["vegetation"].tolist() == table["exg"].tolist()
    assert table["exg"][0] == pytest.approx((240 - 100) / 220) and table["exg"][1] == pytest.approx(20 / 400)
    assert table["redness"][1] == pytest.approx(40 / 400)
    assert table["brightness"].tolist() == pytest.approx([220 / 3, 400 / 3])
    assert table["ratio_red"][1] == pytest.approx(150 / 400)
    assert table["brightness_diff"].tolist() == pytest.approx([-180 / 3, 180 / 3])
    nir = np.concatenate([image, np.zeros((1, 4, 8), dtype=np.float32)])
    nir[3, :, :4], nir[3, :, 4:] = 200.0, 160.0
    with_nir = features_of(labels, nir, ("red", "green", "blue", "nir"))
    assert vegetation_index_name(("red", "green", "blue", "nir")) == "ndvi"
    assert with_nir["vegetation"][0] == pytest.approx((200 - 60) / 260)


def test_terrain_features_and_missing_dem():
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[5:15, 5:15] = 1  # a block standing 3 m above flat ground
    elevation = np.where(labels == 1, 13.0, 10.0).astype(np.float32)
    slope = np.where(labels == 1, 30.0, 5.0).astype(np.float32)
    image = np.full((3, 20, 20), 90.0, dtype=np.float32)
    table = features_of(labels, image, ("red", "green", "blue"), elevation, slope)
    assert table["elevation_diff"].tolist() == pytest.approx([-3.0, 3.0])
    assert table["mean_slope"].tolist() == pytest.approx([5.0, 30.0])
    assert table["relief"].tolist() == pytest.approx([0.0, 0.0])
    without = features_of(labels, image, ("red", "green", "blue"))
    assert without[["mean_slope", "relief", "elevation_diff"]].isna().all().all()
