"""Per-band statistics of the training tiles, for the normalisation every model carries.

Network inputs are first scaled by their dtype's range (``training.features``), which leaves
uint16 reflectance in [0, 0.15] and float bands in whatever unit they come in. Each fold model
therefore also standardises every band with the mean and standard deviation of its own training
folds (never its validation fold or the test split). Pixels that hold no data (NaN in the stored
tiles) are left out of the statistics and enter the network as the band mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: Below this, a band is taken as constant: its scale is left alone rather than blown up.
MIN_STD = 1e-6


@dataclass(frozen=True)
class BandStatistics:
    """Mean and standard deviation of each input band, and how many valid pixels they rest on."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixels: tuple[int, ...] = ()

    @classmethod
    def identity(cls, bands: int) -> BandStatistics:
        """No normalisation (models saved before normalisation existed)."""
        return cls((0.0,) * bands, (1.0,) * bands)

    def to_dict(self) -> dict[str, list]:
        return {"mean": list(self.mean), "std": list(self.std), "pixels": list(self.pixels)}


def band_statistics(batches: Iterable[np.ndarray]) -> BandStatistics:
    """Mean and standard deviation per band over every finite value of the batches.

    Args:
        batches: Arrays of shape (N, C, H, W), e.g. the training tiles read a batch at a time.

    Returns:
        The statistics; a band with no finite value gets mean 0 and std 1, and a constant band
        std 1.

    Raises:
        ValueError: no batch, or batches with different band counts.
    """
    total = squares = count = None
    for batch in batches:
        values = np.moveaxis(np.asarray(batch, dtype=np.float64), 1, 0).reshape(batch.shape[1], -1)
        finite = np.isfinite(values)
        values = np.where(finite, values, 0.0)
        if total is None:
            total, squares, count = np.zeros(len(values)), np.zeros(len(values)), np.zeros(len(values), dtype=np.int64)
        elif len(values) != len(total):
            raise ValueError(f"batches have {len(total)} and {len(values)} bands")
        total += values.sum(axis=1)
        squares += (values ** 2).sum(axis=1)
        count += finite.sum(axis=1)
    if total is None:
        raise ValueError("no tiles to compute band statistics from")
    assert squares is not None and count is not None  # set together with total
    n = np.maximum(count, 1)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean ** 2, 0.0))
    std = np.where((count > 0) & (std > MIN_STD), std, 1.0)
    mean = np.where(count > 0, mean, 0.0)
    return BandStatistics(tuple(float(m) for m in mean), tuple(float(s) for s in std), tuple(int(c) for c in count))
