"""Landslides in a synthetic survey: hand-drawn labels of the true outlines, and how they change the
DEM and the image against the same scene without them."""

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from scipy import ndimage

from landslide_pipeline_tests.synthetic.conftest import SPEC, read, slope_deg


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64).mean(axis=0)


def texture(image: np.ndarray) -> np.ndarray:
    """Local RMS of the Laplacian of luminance over 5 x 5 px."""
    laplacian = ndimage.laplace(luminance(image))
    return np.sqrt(ndimage.uniform_filter(laplacian**2, 5))


def test_labels_are_imprecise_hand_drawn_versions_of_the_ground_truth(survey):
    with rasterio.open(survey.ground_truth) as src:
        assert src.dtypes == ("uint8",) and src.nodata is None
        truth, transform = src.read(1), src.transform
    assert set(np.unique(truth)) == {0, 1}
    labels = gpd.read_file(survey.landslides)
    drawn = rasterize(labels.geometry, out_shape=truth.shape, transform=transform).astype(bool)
    truth = truth.astype(bool)
    assert (truth & drawn).sum() / (truth | drawn).sum() > 0.7
    assert not np.array_equal(truth, drawn)
    components, n = ndimage.label(truth)
    assert n == SPEC.n_landslides
    for polygon in labels.geometry:
        mask = rasterize([polygon], out_shape=truth.shape, transform=transform).astype(bool)
        best = max((mask & (components == i)).sum() / (mask | (components == i)).sum() for i in range(1, n + 1))
        assert best > 0.6


def test_landslides_are_brighter_browner_and_rougher_than_the_rock_they_replaced(survey, baseline):
    image, truth = read(survey.image), read(survey.ground_truth).astype(bool)
    slide_lum, rock_lum = luminance(image)[truth], luminance(baseline.image)[truth]
    assert slide_lum.mean() > rock_lum.mean() + 8
    # ...but not separable by a brightness threshold alone.
    assert np.percentile(slide_lum, 10) < np.percentile(rock_lum, 90)
    redness = lambda img: img[0].astype(float)[truth].mean() - img[2].astype(float)[truth].mean()  # noqa: E731
    assert redness(image) > redness(baseline.image) + 15
    assert texture(image)[truth].mean() > 2 * texture(baseline.image)[truth].mean()


def test_landslides_change_the_scene_only_where_they_are(survey, baseline):
    truth = read(survey.ground_truth).astype(bool)
    away = ~ndimage.binary_dilation(truth, iterations=8)
    assert np.array_equal(read(survey.image)[:, away], baseline.image[:, away])
    assert np.array_equal(read(survey.dem)[away], baseline.dem[away])


def test_dem_shows_head_scarps_toe_deposits_and_erased_benches(survey, baseline):
    dem, truth = read(survey.dem).astype(np.float64), read(survey.ground_truth).astype(bool)
    change = dem - baseline.dem
    components, n = ndimage.label(truth)
    for i in range(1, n + 1):
        inside = components == i
        before = baseline.dem[inside]
        upper, lower = before > np.median(before), before <= np.median(before)
        assert change[inside][upper].mean() < change[inside][lower].mean() - 0.5, i
        assert change[inside].min() < -0.5 and change[inside].max() > 0.3, i
    core = ndimage.binary_erosion(truth, iterations=6)
    assert slope_deg(dem, 0.25)[core].std() < 0.75 * slope_deg(baseline.dem, 0.25)[core].std()
