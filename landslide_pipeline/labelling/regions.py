"""Regions of a label image reduced to mergeable statistics and their adjacency graph.

A ``RegionGraph`` holds, per region, its pixel count, per-channel sums and sums of squares,
elevation extremes, perimeter and bounding box, and, per pair of adjacent regions, the length of
their shared border. Every one of these combines exactly when two regions merge, so the
multi-scale merging (``merging.py``) and the object features (``features.py``) never need the
pixels again. Graphs of adjacent windows of a scene are built separately and concatenated, with
the edges across window borders added from the border pixels, so a scene is never in memory
whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Channels every graph carries besides the image and terrain bands: pixel row and column (for
#: second moments, hence elongation) and their product.
GEOMETRY_CHANNELS = ("row", "col", "row_col")


@dataclass
class RegionGraph:
    """Statistics of regions ``0..n-1`` and the borders between them.

    Attributes:
        channels: Names of the summed channels (bands, terrain, then ``GEOMETRY_CHANNELS``).
        count: (n,) pixels per region.
        sums: (n, k) per-channel sums.
        squares: (n, k) per-channel sums of squares.
        low: (n,) lowest elevation (NaN without a DEM).
        high: (n,) highest elevation (NaN without a DEM).
        perimeter: (n,) pixel edges on the region's outline (scene border included).
        bbox: (n, 4) first row, first column, last row, last column.
        edges: (e, 2) adjacent region pairs, first < second, each pair once.
        shared: (e,) pixel edges the two regions share.
    """

    channels: tuple[str, ...]
    count: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    low: np.ndarray
    high: np.ndarray
    perimeter: np.ndarray
    bbox: np.ndarray
    edges: np.ndarray
    shared: np.ndarray

    @property
    def n_regions(self) -> int:
        return len(self.count)

    def channel(self, name: str) -> int:
        """Column of a channel in ``sums`` and ``squares``."""
        return self.channels.index(name)

    def means(self) -> np.ndarray:
        """(n, k) per-channel means."""
        return self.sums / np.maximum(self.count, 1)[:, None]

    def stds(self) -> np.ndarray:
        """(n, k) per-channel population standard deviations."""
        mean = self.means()
        return np.sqrt(np.maximum(self.squares / np.maximum(self.count, 1)[:, None] - mean**2, 0.0))


def region_statistics(labels: np.ndarray, channels: np.ndarray, names: tuple[str, ...], n_regions: int,
                      elevation: np.ndarray | None, row0: int = 0, col0: int = 0) -> RegionGraph:
    """The graph of one window's regions, without edges to other windows.

    Args:
        labels: (h, w) region ids in ``0..n_regions-1``, or -1 for pixels outside every region
            (nodata).
        channels: (k, h, w) float32 bands to sum (image and terrain bands).
        names: The bands' names.
        n_regions: Number of regions (ids are dense).
        elevation: (h, w) elevation in metres, or None without a DEM.
        row0: Scene row of the window's first row (for bounding boxes and moments).
        col0: Scene column of the window's first column.
    """
    valid = labels >= 0
    ids = labels[valid]
    rows, cols = np.nonzero(valid)
    rows = rows + row0
    cols = cols + col0
    count = np.bincount(ids, minlength=n_regions).astype(np.float64)
    k = len(channels) + len(GEOMETRY_CHANNELS)
    sums, squares = np.empty((n_regions, k)), np.empty((n_regions, k))
    # One channel at a time: a window's pixels are many, so temporaries stay one channel big.
    for c in range(k):
        if c < len(channels):
            values = channels[c][valid].astype(np.float64)
        else:
            values = (rows, cols, rows * cols)[c - len(channels)].astype(np.float64)
        sums[:, c] = np.bincount(ids, values, n_regions)
        squares[:, c] = np.bincount(ids, values * values, n_regions)
    low, high = _extremes(ids, elevation[valid] if elevation is not None else None, n_regions)
    bbox = np.empty((n_regions, 4), dtype=np.int64)
    bbox[:, 0] = _reduce(np.minimum, ids, rows, n_regions, np.iinfo(np.int64).max)
    bbox[:, 1] = _reduce(np.minimum, ids, cols, n_regions, np.iinfo(np.int64).max)
    bbox[:, 2] = _reduce(np.maximum, ids, rows, n_regions, -1)
    bbox[:, 3] = _reduce(np.maximum, ids, cols, n_regions, -1)
    edges, shared, outline = _window_borders(labels, n_regions)
    return RegionGraph(channels=tuple(names) + GEOMETRY_CHANNELS, count=count, sums=sums, squares=squares, low=low,
                       high=high, perimeter=outline, bbox=bbox, edges=edges, shared=shared)


def _reduce(op: np.ufunc, ids: np.ndarray, values: np.ndarray, n: int, fill: float) -> np.ndarray:
    out = np.full(n, fill, dtype=values.dtype)
    op.at(out, ids, values)
    return out


def _extremes(ids: np.ndarray, elevation: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    if elevation is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    elevation = elevation.astype(np.float64)
    known = np.isfinite(elevation)
    low = _reduce(np.minimum, ids[known], elevation[known], n, np.inf)
    high = _reduce(np.maximum, ids[known], elevation[known], n, -np.inf)
    return np.where(np.isfinite(low), low, np.nan), np.where(np.isfinite(high), high, np.nan)


def _window_borders(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges and shared lengths between regions of one window, and each region's full outline.

    The outline counts every pixel edge of a region that faces another region, nodata or the
    window's border; no region spans two windows, so it is also the outline in the scene.
    """
    padded = np.pad(labels, 1, constant_values=-1)
    pairs = [(padded[1:-1, :-1], padded[1:-1, 1:]), (padded[:-1, 1:-1], padded[1:, 1:-1])]
    outline = np.zeros(n, dtype=np.float64)
    keys = []
    for left, right in pairs:
        differ = left != right
        a, b = left[differ], right[differ]
        outline += np.bincount(a[a >= 0], minlength=n) + np.bincount(b[b >= 0], minlength=n)
        inner = (a >= 0) & (b >= 0)
        keys.append(_pair_keys(a[inner], b[inner], n))
    edges, shared = _count_pairs(np.concatenate(keys), n)
    return edges, shared, outline


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    return lo * n + hi


def _count_pairs(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    unique, counts = np.unique(keys, return_counts=True)
    return np.stack([unique // n, unique % n], axis=1), counts.astype(np.float64)


def border_edges(inside: np.ndarray, outside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges between the facing pixels on either side of a window border.

    Args:
        inside: Region ids along the window's edge (-1 for nodata).
        outside: Region ids of the neighbouring window's facing pixels.

    Returns:
        (edges, shared) for the pairs of regions that face each other across the border.
    """
    both = (inside >= 0) & (outside >= 0) & (inside != outside)
    a, b = inside[both].astype(np.int64), outside[both].astype(np.int64)
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    return unique.reshape(-1, 2), counts.astype(np.float64)


def concatenate(graphs: list[RegionGraph], extra_edges: list[tuple[np.ndarray, np.ndarray]]) -> RegionGraph:
    """Joins the graphs of disjoint windows (region ids already global) and adds cross-border edges.

    Args:
        graphs: One graph per window, in id order; window ``i`` holds ids after window ``i-1``'s.
        extra_edges: (edges, shared) across window borders, from ``border_edges``.
    """
    first = graphs[0]
    edges = np.concatenate([g.edges for g in graphs] + [e for e, _ in extra_edges])
    shared = np.concatenate([g.shared for g in graphs] + [s for _, s in extra_edges])
    n = sum(g.n_regions for g in graphs)
    keys, inverse = np.unique(edges[:, 0] * n + edges[:, 1], return_inverse=True)
    return RegionGraph(
        channels=first.channels,
        count=np.concatenate([g.count for g in graphs]),
        sums=np.concatenate([g.sums for g in graphs]),
        squares=np.concatenate([g.squares for g in graphs]),
        low=np.concatenate([g.low for g in graphs]),
        high=np.concatenate([g.high for g in graphs]),
        perimeter=np.concatenate([g.perimeter for g in graphs]),
        bbox=np.concatenate([g.bbox for g in graphs]),
        edges=np.stack([keys // n, keys % n], axis=1),
        shared=np.bincount(inverse, shared),
    )
