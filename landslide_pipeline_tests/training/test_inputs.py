import numpy as np
import pytest

from landslide_pipeline.training.features import (
    ELEVATION_SCALE_M,
    SLOPE_SCALE_DEG,
    named_terrain,
    tile_features,
    training_terrain_bands,
)
from landslide_pipeline.training.inputs import (
    DEFAULT_INPUTS,
    ModelVariant,
    input_bands,
    input_set_of,
    needs_dem,
    variant_keys,
)

RGB = ["red", "green", "blue"]
ALL = [*RGB, "elevation", "slope", "hillshade", "relief"]


def test_a_variant_key_is_the_architecture_for_the_default_input_set_and_names_any_other():
    assert DEFAULT_INPUTS == "rgb-slope"
    assert ModelVariant("linknet").key == "linknet"
    assert ModelVariant("linknet", "rgb").key == "linknet@rgb"
    assert ModelVariant.parse("linknet") == ModelVariant("linknet", "rgb-slope")
    assert ModelVariant.parse("unet-3x3@rgb-dem") == ModelVariant("unet-3x3", "rgb-dem")
    assert variant_keys(["unet", "fcn"], ["rgb-slope", "rgb"]) == ["unet", "unet@rgb", "fcn", "fcn@rgb"]
    with pytest.raises(ValueError, match="unknown input set 'rgb-lidar'"):
        ModelVariant.parse("unet@rgb-lidar")


@pytest.mark.parametrize("inputs, bands", [
    ("rgb", RGB), ("rgb-dem", [*RGB, "elevation"]), ("rgb-slope", [*RGB, "slope"]),
    ("rgb-terrain", [*RGB, "elevation", "slope", "hillshade", "relief"])])
def test_an_input_set_takes_the_image_bands_and_its_terrain_bands_in_order(inputs, bands):
    assert input_bands(inputs, ALL) == bands
    assert input_set_of(bands) == inputs
    assert needs_dem(bands) == (inputs != "rgb")


def test_an_input_set_the_training_set_cannot_feed_says_what_to_change():
    with pytest.raises(ValueError, match="needs band.*slope.*use_terrain=true"):
        input_bands("rgb-slope", RGB)
    with pytest.raises(ValueError, match="hillshade, relief.*survey.toml terrain_bands"):
        input_bands("rgb-terrain", [*RGB, "elevation", "slope"])
    assert input_bands("rgb", ["band_1", "band_2", "band_3", "band_4", "slope"]) == [f"band_{i}" for i in range(1, 5)]


def test_terrain_features_are_scaled_and_elevation_is_centred_on_the_tile():
    image = np.full((3, 4, 4), 255, dtype=np.uint8)
    elevation = np.arange(16, dtype=np.float32).reshape(4, 4) + 1200.0
    elevation[0, 0] = np.nan  # a DEM gap: ignored by the tile mean, NaN in the input
    terrain = {"elevation": elevation, "slope": np.full((4, 4), 45.0), "hillshade": np.full((4, 4), 0.5),
               "relief": np.full((4, 4), 20.0)}
    x = tile_features(image, terrain, None, ["elevation", "slope", "hillshade", "relief"])
    assert x.shape == (7, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[:3], 1.0)
    centred = (elevation - np.nanmean(elevation)) / ELEVATION_SCALE_M
    np.testing.assert_allclose(x[3], centred, rtol=1e-6)
    assert np.isnan(x[3, 0, 0]) and abs(np.nanmean(x[3])) < 1e-6
    np.testing.assert_allclose(x[4], 45.0 / SLOPE_SCALE_DEG)
    np.testing.assert_allclose(x[5:], [np.full((4, 4), 0.5), np.full((4, 4), 0.2)])
    # Only the bands asked for, in the order asked for.
    np.testing.assert_allclose(tile_features(image, terrain, None, ["slope"])[3], 0.5)
    with pytest.raises(ValueError, match="relief asked for"):
        tile_features(image, {"slope": terrain["slope"]}, None, ["relief"])


def test_terrain_tiles_name_their_bands_and_unnamed_ones_are_elevation_then_slope():
    values = np.zeros((3, 2, 2))
    assert list(named_terrain(values, ("elevation", "slope", "relief"))) == ["elevation", "slope", "relief"]
    assert list(named_terrain(values[:2], (None, None))) == ["elevation", "slope"]
    assert training_terrain_bands(["relief", "slope", "elevation"]) == ["elevation", "slope", "relief"]
