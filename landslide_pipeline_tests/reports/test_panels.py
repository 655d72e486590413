import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from landslide_pipeline.reports.panels import (
    OUTCOME_COLOURS,
    REFERENCE_COLOURS,
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
