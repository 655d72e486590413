import numpy as np
import pytest

from landslide_pipeline.training.normalization import band_statistics


def test_statistics_pool_every_batch_and_ignore_missing_values():
    rng = np.random.default_rng(0)
    a = rng.normal([[[1.0]], [[100.0]]], [[[2.0]], [[10.0]]], (5, 2, 8, 8))
    b = rng.normal([[[1.0]], [[100.0]]], [[[2.0]], [[10.0]]], (3, 2, 8, 8))
    b[0, 1, :4] = np.nan  # no data: neither a value nor a pixel
    b[1, 0, 0, 0] = np.inf
    stats = band_statistics([a, b])
    both = np.concatenate([a, b])
    finite = np.isfinite(both)
    for band in range(2):
        values = both[:, band][finite[:, band]]
        assert stats.mean[band] == pytest.approx(values.mean())
        assert stats.std[band] == pytest.approx(values.std())
        assert stats.pixels[band] == values.size


def test_constant_and_empty_bands_keep_their_scale():
    x = np.zeros((2, 2, 4, 4))
    x[:, 1] = np.nan
    stats = band_statistics([x])
    assert stats.std == (1.0, 1.0) and stats.mean == (0.0, 0.0) and stats.pixels == (32, 0)


def test_no_tiles_or_mixed_band_counts_raise():
    with pytest.raises(ValueError, match="no tiles"):
        band_statistics([])
    with pytest.raises(ValueError, match="bands"):
        band_statistics([np.zeros((1, 2, 2, 2)), np.zeros((1, 3, 2, 2))])
