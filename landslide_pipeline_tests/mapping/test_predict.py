from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.enums import ColorInterp
from torch import nn

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import tile_offsets
from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.geo.terrain import dem_on_grid, terrain_bands
from landslide_pipeline.mapping import (
    PROBABILITY_SCALE,
    PredictionSpec,
    VectorizeSpec,
    map_scene,
    predict_scene,
    vectorize_landslides,
)
from landslide_pipeline.mapping.predict import ramp_weights
from landslide_pipeline.nn import create_model
from landslide_pipeline.nn.segmenter import BandNormalization, NormalizedNetwork, Segmenter
from landslide_pipeline.surveys import open_survey
from landslide_pipeline.synthetic import SyntheticSurveySpec, generate_survey
from landslide_pipeline.training.checkpoint import MemberSpec, ModelSpec, save_model
from landslide_pipeline.training.features import SLOPE_SCALE_DEG, scale_image
from landslide_pipeline_tests.conftest import write_raster

CPU = torch.device("cpu")
RGB = ["red", "green", "blue"]
#: 200 px is no multiple of 64: the last window row and column are snapped inside the scene.
SMALL = PredictionSpec(window=64, overlap=16, batch_size=3, blocksize=128)


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mapping") / "s200"
    generate_survey(folder, SyntheticSurveySpec(size_px=200, seed=1))
    return folder


def as_segmenter(network: nn.Module, bands: int) -> Segmenter:
    """A network returning logits, as a model (no normalisation) returning probabilities."""
    return Segmenter([NormalizedNetwork(BandNormalization([0.0] * bands, [1.0] * bands), network)]).eval()


@pytest.fixture(scope="module")
def unet() -> Segmenter:
    torch.manual_seed(0)
    return as_segmenter(create_model("unet", 3, 2, width=0.125), 3)


def unet_spec(threshold: float = 0.5, scaling: str = "uint8") -> ModelSpec:
    member = MemberSpec("unet", 0.125, 0, (0.0,) * 3, (1.0,) * 3)
    return ModelSpec(RGB, scaling, [member], threshold=threshold)


def pointwise_model(weights: list[float]) -> nn.Module:
    """A 1x1 conv: landslide logit = sum(weights * bands), background logit 0. Each pixel's output
    depends on that pixel alone, so any correct tiling reproduces the whole-scene result exactly."""
    conv = nn.Conv2d(len(weights), 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[1, :, 0, 0] = torch.tensor(weights)
    return conv


def pointwise_probability(features: np.ndarray, weights: list[float]) -> np.ndarray:
    """What ``pointwise_model(weights)`` gives for (bands, H, W) features: sigmoid of the weighted sum."""
    logit = np.tensordot(np.asarray(weights, dtype=np.float64), features.astype(np.float64), axes=1)
    return 1.0 / (1.0 + np.exp(-logit))


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def decoded(path: Path) -> np.ndarray:
    return read(path).astype(np.float64) / PROBABILITY_SCALE


def run(image, model, out: Path, spec=SMALL, bands=RGB, dem=None, image_bands=None, nodata=None, **kwargs):
    """Maps ``image`` (a path, or crops to mosaic) with ``model`` into ``out``."""
    model = model if isinstance(model, Segmenter) else as_segmenter(model, len(bands))
    images = (image,) if isinstance(image, Path) else tuple(image)
    scene = SceneFiles(images, dem, image_bands, nodata)
    return predict_scene(scene, model, bands, out / "probability.tif", out / "mask.tif", spec=spec, device=CPU,
                         **kwargs)


RED_MINUS_GREEN = [20.0, -20.0, 0.0]


def test_windows_reproduce_the_whole_scene_exactly_with_a_pointwise_model(survey, tmp_path):
    report = run(survey / "image.tif", pointwise_model(RED_MINUS_GREEN), tmp_path)
    with rasterio.open(survey / "image.tif") as src:
        expected = pointwise_probability(scale_image(src.read()), RED_MINUS_GREEN)
    probability, mask = decoded(tmp_path / "probability.tif"), read(tmp_path / "mask.tif")
    assert np.abs(probability - expected).max() <= 0.5 / PROBABILITY_SCALE + 1e-6
    clear = np.abs(expected - 0.5) > 1e-5  # away from the threshold, float rounding cannot flip a pixel
    np.testing.assert_array_equal(mask[clear], (expected[clear] > 0.5).astype(np.uint8))
    assert 0.2 < mask.mean() < 0.8  # the check is not trivially all one class
    n = len(tile_offsets(200, 64, 48))
    assert (report.windows, report.skipped_windows) == (n * n, 0)
    assert report.pixels == report.valid_pixels == 200 * 200
    assert report.landslide_fraction == pytest.approx(mask.mean())


@pytest.mark.parametrize("shape", [(70, 100), (40, 33)])
def test_scenes_smaller_than_the_window_get_the_longest_window_that_fits(tmp_path, shape):
    rng = np.random.default_rng(0)
    image = write_raster(tmp_path / "image.tif", rng.integers(0, 256, (3, *shape), dtype=np.uint8))
    run(image, pointwise_model(RED_MINUS_GREEN), tmp_path, spec=PredictionSpec(window=512, overlap=64))
    with rasterio.open(image) as src:
        expected = pointwise_probability(scale_image(src.read()), RED_MINUS_GREEN)
    assert np.abs(decoded(tmp_path / "probability.tif") - expected).max() <= 0.5 / PROBABILITY_SCALE + 1e-6


def test_a_scene_side_under_32_px_is_refused(tmp_path):
    image = write_raster(tmp_path / "image.tif", np.zeros((3, 20, 100), dtype=np.uint8))
    with pytest.raises(SurveyInputError, match="image.tif.*20 px is shorter than 32 px"):
        run(image, pointwise_model(RED_MINUS_GREEN), tmp_path)


def test_blended_unet_windows_stay_close_to_one_pass_over_the_whole_scene(tmp_path, unet):
    folder = tmp_path / "s256"
    generate_survey(folder, SyntheticSurveySpec(size_px=256, seed=0))
    whole = run(folder / "image.tif", unet, tmp_path / "whole", spec=PredictionSpec(window=256, overlap=0))
    assert whole.windows == 1
    reference = decoded(tmp_path / "whole" / "probability.tif")
    error = {}
    for overlap in (0, 16):
        spec = PredictionSpec(window=64, overlap=overlap, batch_size=8, blocksize=128)
        run(folder / "image.tif", unet, tmp_path / f"o{overlap}", spec=spec)
        error[overlap] = np.abs(decoded(tmp_path / f"o{overlap}" / "probability.tif") - reference)
    assert error[16].mean() < 0.015 and np.quantile(error[16], 0.99) < 0.08
    assert error[0].mean() > 2 * error[16].mean()  # blending is what brings the windows together
    assert reference.std() > 0.05  # the network's output does vary over the scene


def seam_ratio(probability: np.ndarray, window: int, overlap: int) -> float:
    """The largest mean jump between neighbouring rows or columns at a window edge, over the median
    jump between all neighbouring rows and columns."""
    offsets = tile_offsets(probability.shape[0], window, window - overlap)
    edges = sorted({o for o in offsets if o} | {o + window for o in offsets if o + window < probability.shape[0]})
    across_cols = np.abs(np.diff(probability, axis=1)).mean(axis=0)
    across_rows = np.abs(np.diff(probability, axis=0)).mean(axis=1)
    at_edges = [jumps[e - 1] for e in edges for jumps in (across_cols, across_rows)]
    return max(at_edges) / np.median(np.r_[across_cols, across_rows])


def test_no_seams_on_a_scene_that_is_not_a_multiple_of_the_window(survey, tmp_path, unet):
    run(survey / "image.tif", unet, tmp_path / "blended")
    assert seam_ratio(decoded(tmp_path / "blended" / "probability.tif"), 64, 16) < 2.0
    # The measure does see seams: windows stitched side by side without overlap show them.
    run(survey / "image.tif", unet, tmp_path / "abutting", spec=PredictionSpec(window=64, overlap=0, blocksize=128))
    assert seam_ratio(decoded(tmp_path / "abutting" / "probability.tif"), 64, 0) > 4.0


def test_ramp_weights_are_positive_and_sum_to_one_across_an_overlap():
    weights = ramp_weights(64, 16)
    assert weights.min() > 0 and weights[16:48].min() == 1.0
    np.testing.assert_allclose(weights[48:] + weights[:16], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ramp_weights(64, 0), 1.0)


def test_outputs_are_cloud_optimized_geotiffs_on_the_scene_grid(survey, tmp_path, unet):
    out = tmp_path / "map"
    run(survey / "image.tif", unet, out)
    with rasterio.open(survey / "image.tif") as scene:
        grid = (scene.crs, scene.transform, scene.shape)
    for name in ("probability.tif", "mask.tif"):
        with rasterio.open(out / name) as src:
            assert (src.crs, src.transform, src.shape) == grid
            assert (src.count, src.dtypes[0], src.nodata) == (1, "uint8", 255)
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.profile["tiled"] and src.block_shapes[0] == (128, 128)
            assert src.overviews(1) == [2]
    with rasterio.open(out / "probability.tif") as src:
        assert src.scales[0] == pytest.approx(1 / 254) and src.descriptions == ("landslide probability",)
    assert set(np.unique(read(out / "mask.tif"))) <= {0, 1}
    assert sorted(p.name for p in out.iterdir()) == ["mask.tif", "probability.tif"]  # no scratch left


def nodata_variants(folder: Path, pixels: np.ndarray, invalid: np.ndarray, kind: str) -> Path:
    """The same image with ``invalid`` marked as nodata by a nodata value, an alpha band, NaN or an
    internal mask."""
    if kind == "nodata value":
        return write_raster(folder / "image.tif", np.where(invalid, 0, np.maximum(pixels, 1)).astype(np.uint8),
                            nodata=0)
    if kind == "NaN":
        return write_raster(folder / "image.tif", np.where(invalid, np.nan, pixels / 255.0).astype(np.float32))
    if kind == "internal mask":
        path = write_raster(folder / "image.tif", pixels)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as dst:
            dst.write_mask(np.where(invalid, 0, 255).astype(np.uint8))
        return path
    alpha = np.where(invalid, 0, 255).astype(np.uint8)[None]
    path = write_raster(folder / "image.tif", np.concatenate([pixels, alpha]))
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    return path


@pytest.mark.parametrize("kind", ["nodata value", "alpha band", "NaN", "internal mask"])
def test_nodata_pixels_are_nodata_in_both_outputs(tmp_path, kind):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (3, 130, 150), dtype=np.uint8)
    invalid = np.zeros((130, 150), dtype=bool)
    invalid[:70, :80] = True  # holds the whole first window: it is not run
    invalid[100:, 140:] = True
    image = nodata_variants(tmp_path, pixels, invalid, kind)
    report = run(image, pointwise_model(RED_MINUS_GREEN), tmp_path)
    probability, mask = read(tmp_path / "probability.tif"), read(tmp_path / "mask.tif")
    np.testing.assert_array_equal(probability == 255, invalid)
    np.testing.assert_array_equal(mask == 255, invalid)
    assert report.valid_pixels == (~invalid).sum() and report.skipped_windows >= 1
    with rasterio.open(image) as src:
        features = scale_image(src.read(indexes=[1, 2, 3]))
    expected = pointwise_probability(np.nan_to_num(features), RED_MINUS_GREEN)
    valid = ~invalid
    assert np.abs(probability[valid] / PROBABILITY_SCALE - expected[valid]).max() <= 0.5 / PROBABILITY_SCALE + 1e-6


def test_nodata_enters_the_network_as_the_band_mean_so_nan_cannot_spread(tmp_path, unet):
    rng = np.random.default_rng(2)
    pixels = rng.random((3, 96, 128), dtype=np.float32)
    invalid = np.zeros((96, 128), dtype=bool)
    invalid[20:40, 30:60] = True
    with_nan = write_raster(tmp_path / "nan.tif", np.where(invalid, np.nan, pixels).astype(np.float32))
    with_zeros = write_raster(tmp_path / "zeros.tif", np.where(invalid, 0.0, pixels).astype(np.float32))
    spec = PredictionSpec(window=64, overlap=16, blocksize=128)
    run(with_nan, unet, tmp_path / "nan", spec=spec)
    run(with_zeros, unet, tmp_path / "zeros", spec=spec)
    probability = read(tmp_path / "nan" / "probability.tif")
    np.testing.assert_array_equal(probability == 255, invalid)
    np.testing.assert_array_equal(probability[~invalid], read(tmp_path / "zeros" / "probability.tif")[~invalid])


def test_a_slope_model_without_a_dem_is_refused(survey, tmp_path):
    with pytest.raises(SurveyInputError, match="image.tif: the model takes terrain bands.*DEM"):
        run(survey / "image.tif", pointwise_model([0, 0, 0, 1]), tmp_path, bands=[*RGB, "slope"])
    assert not (tmp_path / "probability.tif").exists()


def test_the_slope_band_comes_from_the_dem_as_in_tiling(survey, tmp_path):
    weights = [0.0, 0.0, 0.0, 6.0]  # landslide logit = 6 * slope / 90 degrees
    run(survey / "image.tif", pointwise_model(weights), tmp_path, bands=[*RGB, "slope"], dem=survey / "dem.tif")
    with rasterio.open(survey / "image.tif") as image, rasterio.open(survey / "dem.tif") as dem:
        elevation = dem_on_grid(dem, image.transform, image.shape, image.crs)
        slope = terrain_bands(elevation, (0.25, 0.25))[1]
    expected = pointwise_probability(np.stack([np.zeros_like(slope)] * 3 + [slope / SLOPE_SCALE_DEG]), weights)
    assert slope.max() > 30  # pit walls: the slope band carries real signal
    assert np.abs(decoded(tmp_path / "probability.tif") - expected).max() <= 1.0 / PROBABILITY_SCALE


def test_a_mosaic_of_crops_maps_like_the_single_file(survey, tmp_path, unet):
    with rasterio.open(survey / "image.tif") as src:
        pixels, transform = src.read(), src.transform
    crops = [write_raster(tmp_path / "left.tif", pixels[:, :, :90], transform=transform),
             write_raster(tmp_path / "right.tif", pixels[:, :, 90:], transform=transform @ Affine.translation(90, 0))]
    run(survey / "image.tif", unet, tmp_path / "single")
    run(crops, unet, tmp_path / "mosaic")
    for name in ("probability.tif", "mask.tif"):
        np.testing.assert_array_equal(read(tmp_path / "mosaic" / name), read(tmp_path / "single" / name))


class FailsOnSecondBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("device lost")
        return torch.zeros(x.shape[0], 2, *x.shape[2:])


def test_a_failed_run_leaves_the_previous_outputs_and_no_scratch(survey, tmp_path):
    (tmp_path / "probability.tif").write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="device lost"):
        run(survey / "image.tif", FailsOnSecondBatch(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probability.tif"]
    assert (tmp_path / "probability.tif").read_bytes() == b"previous"


def test_band_count_mismatch_names_the_file(survey, tmp_path):
    with pytest.raises(SurveyInputError, match="image.tif: has 3 image band.*model takes 4"):
        run(survey / "image.tif", pointwise_model([1, 1, 1, 1]), tmp_path, bands=["b1", "b2", "b3", "b4"])
    with pytest.raises(ValueError, match="terrain bands must follow the image bands"):
        run(survey / "image.tif", pointwise_model([1, 1, 1]), tmp_path, bands=["red", "elevation", "green"])


@pytest.mark.parametrize("kwargs", [dict(window=100), dict(window=64, overlap=40), dict(threshold=1.0),
                                    dict(batch_size=0), dict(blocksize=100), dict(blocksize=64)])
def test_bad_specs_are_refused(kwargs):
    with pytest.raises(ValueError):
        PredictionSpec(**kwargs)


def test_map_scene_maps_with_a_saved_model_at_its_calibrated_threshold(survey, tmp_path, unet):
    save_model(tmp_path / "model", unet, unet_spec(threshold=0.47))
    report = map_scene(open_survey(survey).scene, tmp_path / "model", tmp_path / "map", SMALL, device=CPU)
    run(survey / "image.tif", unet, tmp_path / "direct")
    probability = read(tmp_path / "map" / "probability.tif")
    np.testing.assert_array_equal(probability, read(tmp_path / "direct" / "probability.tif"))
    assert report.to_dict()["mask"] == str(tmp_path / "map" / "mask.tif")
    with rasterio.open(tmp_path / "map" / "mask.tif") as src:
        assert src.tags()["threshold"] == "probability > 0.47"
    decoded_probability = decoded(tmp_path / "map" / "probability.tif")
    between = (decoded_probability > 0.475) & (decoded_probability < 0.495)
    assert between.any()  # pixels between the two thresholds: landslide only at the calibrated one
    assert (read(tmp_path / "map" / "mask.tif")[between] == 1).all()
    assert (read(tmp_path / "direct" / "mask.tif")[between] == 0).all()


def test_imagery_of_another_dtype_than_the_model_was_trained_on_is_refused(survey, tmp_path, unet):
    save_model(tmp_path / "model", unet, unet_spec(scaling="uint16"))
    with pytest.raises(SurveyInputError, match="is uint8 imagery; the model was trained on uint16 imagery"):
        map_scene(open_survey(survey).scene, tmp_path / "model", tmp_path / "map", SMALL, device=CPU)
    assert not (tmp_path / "map" / "probability.tif").exists()


def test_the_mapped_scene_vectorizes_into_polygons_holding_every_landslide_pixel(survey, tmp_path):
    report = run(survey / "image.tif", pointwise_model(RED_MINUS_GREEN), tmp_path)
    polygons = vectorize_landslides(report.mask, report.probability, tmp_path / "landslides.gpkg",
                                    VectorizeSpec(min_area_m2=0.0, simplify_m=0.0, strip_rows=48))
    assert polygons.pixels.sum() == report.landslide_pixels
    np.testing.assert_allclose(polygons.area_m2.sum(), report.landslide_pixels * 0.25**2)
    assert polygons.mean_probability.min() >= 0.5  # every landslide pixel is above the threshold


def test_a_truncated_image_names_the_file_and_leaves_no_output(tmp_path):
    image = write_raster(tmp_path / "image.tif", np.ones((3, 200, 200), dtype=np.uint8))
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])  # the header is intact: only reading the pixels can tell
    with pytest.raises(SurveyInputError, match=r"image.tif: cannot read pixels in rows .*corrupt or truncated"):
        run(tmp_path / "image.tif", pointwise_model(RED_MINUS_GREEN), tmp_path / "map")
    assert not (tmp_path / "map").exists() or not any((tmp_path / "map").iterdir())


def test_every_terrain_band_a_model_takes_comes_from_the_dem(survey, tmp_path):
    weights = [0.0, 0.0, 0.0, 0.0, 6.0]  # landslide logit = 6 * hillshade
    run(survey / "image.tif", pointwise_model(weights), tmp_path, bands=[*RGB, "slope", "hillshade"],
        dem=survey / "dem.tif")
    with rasterio.open(survey / "image.tif") as image, rasterio.open(survey / "dem.tif") as dem:
        elevation = dem_on_grid(dem, image.transform, image.shape, image.crs)
        shade = terrain_bands(elevation, (0.25, 0.25), bands=("elevation", "slope", "hillshade"))[2]
    expected = pointwise_probability(np.stack([np.zeros_like(shade)] * 4 + [shade]), weights)
    assert shade.std() > 0.05  # the pit's walls are lit and shaded
    assert np.abs(decoded(tmp_path / "probability.tif") - expected).max() <= 1.0 / PROBABILITY_SCALE
