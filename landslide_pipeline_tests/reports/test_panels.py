import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from landslide_pipeline.layout import CLASS_EXAMPLES_PANEL
from landslide_pipeline.reports.panels import (
    OUTCOME_COLOURS,
    REFERENCE_COLOURS,
    class_panels,
    class_slug,
    outcome_rgb,
    panel_rows,
    pick_panel_tiles,
    qualitative_panel,
    stretch_rgb,
)


def quadrant_tile(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and reference of one tile whose quadrants are TP (top left), FP (top right),
    FN (bottom left) and TN (bottom right)."""
    half = size // 2
    prediction = np.zeros((size, size), dtype=np.uint8)
    reference = np.zeros((size, size), dtype=np.uint8)
    prediction[:half, :] = 1  # top half predicted
    reference[:, :half] = 1  # left half in the reference
    return prediction, reference


def colour_count(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(pixels == colour, axis=-1).sum())


def test_outcome_colours_at_known_pixels():
    prediction, reference = quadrant_tile(4)
    rgb = outcome_rgb(prediction, reference)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3)
    assert tuple(rgb[0, 0]) == OUTCOME_COLOURS["true positive"]
    assert tuple(rgb[0, 3]) == OUTCOME_COLOURS["false positive"]
    assert tuple(rgb[3, 0]) == OUTCOME_COLOURS["false negative"]
    assert tuple(rgb[3, 3]) == OUTCOME_COLOURS["true negative"]
    # each quadrant is 2 x 2 pixels of one colour
    assert all(colour_count(rgb, colour) == 4 for colour in OUTCOME_COLOURS.values())


def test_outcome_colours_are_distinct_and_the_reference_is_white_on_black():
    assert len(set(OUTCOME_COLOURS.values())) == 4
    rows = panel_rows(np.zeros((1, 3, 4, 4), np.float32), quadrant_tile(4)[1][None], {})
    reference_cell = rows[0][1]
    assert tuple(reference_cell[0, 0]) == REFERENCE_COLOURS["landslide"] == (255, 255, 255)
    assert tuple(reference_cell[0, 3]) == REFERENCE_COLOURS["background"] == (0, 0, 0)


def test_stretch_maps_the_2nd_and_98th_percentiles_to_black_and_white():
    band = np.arange(101, dtype=np.float32).reshape(1, 1, 101)  # percentile p is the value p
    rgb = stretch_rgb(np.concatenate([band, band * 2, np.full_like(band, 7.0)]))
    red = rgb[0, :, 0]
    assert red[2] == 0 and red[98] == 255  # the stretch's ends
    assert red[0] == 0 and red[100] == 255  # beyond them: clipped
    assert red[50] == round((50 - 2) / 96 * 255)  # linear in between
    assert np.array_equal(rgb[0, :, 1], red)  # the same stretch whatever the band's scale
    assert not rgb[..., 2].any()  # a constant band is black


def test_stretch_draws_a_single_band_as_grey_and_uses_only_the_first_three_bands():
    rng = np.random.default_rng(0)
    grey = stretch_rgb(rng.random((1, 8, 8)))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    four = rng.random((4, 8, 8))
    assert np.array_equal(stretch_rgb(four), stretch_rgb(four[:3]))


def test_panel_rows_hold_image_reference_then_each_architecture():
    prediction, reference = quadrant_tile(8)
    images = np.random.default_rng(1).random((2, 4, 8, 8)).astype(np.float32)
    references = np.stack([reference, np.zeros_like(reference)])
    predictions = {"unet": np.stack([prediction] * 2), "fcn": np.zeros((2, 8, 8), np.uint8)}
    rows = panel_rows(images, references, predictions)
    assert len(rows) == 2 and all(len(row) == 4 for row in rows)
    assert np.array_equal(rows[0][2], outcome_rgb(prediction, reference))
    # fcn predicts nothing: the reference's landslide pixels are all false negatives
    assert colour_count(rows[0][3], OUTCOME_COLOURS["false negative"]) == int(reference.sum())


def test_panel_inputs_are_checked():
    images = np.zeros((2, 3, 8, 8), np.float32)
    reference = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="'fcn'"):
        panel_rows(images, reference, {"fcn": np.zeros((2, 8, 7), np.uint8)})
    with pytest.raises(ValueError, match="differ"):
        panel_rows(images[:1], reference, {})
    with pytest.raises(ValueError, match="1 titles for 2 tiles"):
        qualitative_panel(images, reference, {}, "unused.png", titles=["only one"])


def test_saved_panel_shows_the_legend_colours_where_the_prediction_is(tmp_path):
    prediction, reference = quadrant_tile(32)
    images = np.random.default_rng(2).random((1, 3, 32, 32)).astype(np.float32)
    with_model = qualitative_panel(images, reference[None], {"unet": prediction[None]}, tmp_path / "panel.png",
                                   titles=["tile_0_0"])
    without = qualitative_panel(images, reference[None], {}, tmp_path / "no_model.png")
    assert plt.get_fignums() == []
    with Image.open(with_model) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 200
        pixels = np.asarray(image.convert("RGB"))
    with Image.open(without) as image:
        legend_only = np.asarray(image.convert("RGB"))
    # Without a model column the outcome colours appear only in the legend's small patches;
    # the prediction cell adds a large block (a quadrant of a ~2 inch cell) of each.
    for outcome in ("true positive", "false positive", "false negative"):
        colour = OUTCOME_COLOURS[outcome]
        assert 0 < colour_count(legend_only, colour) < 1000, outcome
        assert colour_count(pixels, colour) > colour_count(legend_only, colour) + 3000, outcome


def test_pick_panel_tiles_prefers_landslides_and_is_deterministic():
    reference = np.zeros((10, 4, 4), np.uint8)
    landslide_tiles = [1, 4, 6, 9]
    reference[landslide_tiles, 0, 0] = 1
    picked = pick_panel_tiles(reference, 3, seed=0)
    assert len(picked) == 3 and set(picked) <= set(landslide_tiles)
    assert np.array_equal(picked, pick_panel_tiles(reference, 3, seed=0))
    assert len({tuple(pick_panel_tiles(reference, 3, seed=s)) for s in range(10)}) > 1  # the seed matters

    topped_up = pick_panel_tiles(reference, 6, seed=0)
    assert list(topped_up[:4]) == landslide_tiles  # every landslide tile, first
    assert not reference[topped_up[4:]].any() and len(set(topped_up)) == 6
    assert len(pick_panel_tiles(reference, 50, seed=0)) == 10
    with pytest.raises(ValueError, match="at least 1"):
        pick_panel_tiles(reference, 0, seed=0)


def test_class_panels_write_one_png_per_class_with_its_tiles(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.random((5, 3, 32, 32)).astype(np.float32)
    reference = np.zeros((5, 32, 32), np.uint8)
    reference[:, 4:12, 4:12] = 1
    predictions = {"unet": reference.copy(), "fcn": np.zeros_like(reference)}
    examples = {"small landslides": np.array([3, 1]), "complex background": np.array([4]),
                "medium landslides": np.array([], dtype=np.int64)}
    paths = class_panels(images, reference, predictions, examples, tmp_path, titles=[f"t{i}" for i in range(5)])
    assert list(paths) == ["small landslides", "complex background"]  # no panel for a class without tiles
    assert paths["small landslides"] == tmp_path / "examples_small_landslides.png"
    assert paths["complex background"] == tmp_path / CLASS_EXAMPLES_PANEL.format("complex_background")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples_complex_background.png",
                                                          "examples_small_landslides.png"]
    assert plt.get_fignums() == []
    sizes = {}
    for name, path in paths.items():
        assert path.stat().st_size > 5_000
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 400
            sizes[name] = image.size
            pixels = np.asarray(image.convert("RGB"))
        # unet finds every landslide pixel: a block of true-positive yellow per tile
        assert colour_count(pixels, OUTCOME_COLOURS["true positive"]) > 1000
    # two rows of tiles are taller than one, at the same width (image, reference, two models)
    assert sizes["small landslides"][0] == sizes["complex background"][0]
    assert sizes["small landslides"][1] > sizes["complex background"][1] + 100


def test_class_panels_check_their_inputs(tmp_path):
    images = np.zeros((2, 3, 8, 8), np.float32)
    reference = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="1 titles for 2 tiles"):
        class_panels(images, reference, {}, {"small landslides": np.array([0])}, tmp_path, titles=["a"])
    with pytest.raises(ValueError, match="distinct file names"):
        class_panels(images, reference, {}, {"small landslides": np.array([0]), "Small-landslides": np.array([1])},
                     tmp_path)
    with pytest.raises(ValueError, match="'fcn'"):
        class_panels(images, reference, {"fcn": np.zeros((2, 8, 7), np.uint8)}, {"x": np.array([0])}, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert class_slug("Simple background") == "simple_background" and class_slug(" large / >2048 px ") == "large_2048_px"
    with pytest.raises(ValueError, match="no letters or digits"):
        class_slug("--")


def test_class_panels_draw_each_class_from_its_own_tiles_and_titles(tmp_path, monkeypatch):
    drawn = {}

    def record(images, reference, predictions, path, titles=None):
        drawn[path.name] = (images[:, 0, 0, 0].tolist(), reference[:, 0, 0].tolist(),
                            {k: p[:, 0, 0].tolist() for k, p in predictions.items()}, titles)
        return path

    monkeypatch.setattr("landslide_pipeline.reports.panels.qualitative_panel", record)
    images = np.arange(4, dtype=np.float32)[:, None, None, None] * np.ones((4, 3, 8, 8), np.float32)
    reference = np.zeros((4, 8, 8), np.uint8)
    reference[[1, 3], 0, 0] = 1
    prediction = np.zeros_like(reference)
    prediction[2, 0, 0] = 1
    class_panels(images, reference, {"unet": prediction}, {"large landslides": np.array([3, 2])}, tmp_path,
                 titles=["a", "b", "c", "d"])
    class_panels(images, reference, {"unet": prediction}, {"simple background": [1]}, tmp_path)
    assert drawn == {"examples_large_landslides.png": ([3.0, 2.0], [1, 0], {"unet": [0, 1]}, ["d", "c"]),
                     "examples_simple_background.png": ([1.0], [1], {"unet": [0]}, ["tile 1"])}
