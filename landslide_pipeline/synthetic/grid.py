"""The scene grid of a synthetic survey and the helpers every scene component draws with.

Scene coordinates are metres from the scene's upper-left corner: x east, y south (down the rows).
``noise`` is the smooth random field behind the terrain, the bench wobble and the image textures.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
from rasterio.features import rasterize
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

#: A scalar, or an array of them, element-wise.
FloatOrArray = TypeVar("FloatOrArray", float, np.ndarray)


class Grid:
    """Pixel-centre coordinates in scene metres: x east from the left edge, y south from the top.

    Attributes:
        n: Width and height in pixels.
        p: Pixel size in metres.
        extent: Width and height in metres.
        k: Size factor (0.4..1) of the scene's features: benches, roads and slides.
        x: Pixel-centre x of each column, shape (1, n).
        y: Pixel-centre y of each row, shape (n, 1).
    """

    def __init__(self, n: int, pixel_size: float) -> None:
        self.n = n
        self.p = pixel_size
        self.extent = n * pixel_size
        # Small scenes get proportionally smaller benches, roads and slides so that they still fit.
        self.k = float(np.clip(self.extent / 160.0, 0.4, 1.0))
        self.x = ((np.arange(n, dtype=np.float32) + 0.5) * pixel_size)[None, :]
        self.y = ((np.arange(n, dtype=np.float32) + 0.5) * pixel_size)[:, None]

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns of the grid."""
        return (self.n, self.n)

    def px(self, metres: FloatOrArray) -> FloatOrArray:
        """A length in metres as a (fractional) number of pixels."""
        return metres / self.p


def _bspline_weights(n_out: int, cell: int, offset: float) -> np.ndarray:
    """Dense (n_out, n_coarse) matrix that evaluates a cubic B-spline on a grid of spacing ``cell``."""
    pos = (np.arange(n_out) + offset) / cell + 1.0
    base = np.floor(pos).astype(int)
    f = pos - base
    taps = np.stack([(1 - f) ** 3, 3 * f**3 - 6 * f**2 + 4, -3 * f**3 + 3 * f**2 + 3 * f + 1, f**3]) / 6.0
    weights = np.zeros((n_out, int(base.max()) + 3), dtype=np.float32)
    rows = np.arange(n_out)
    for tap in range(4):
        weights[rows, base - 1 + tap] = taps[tap]
    return weights


def noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Smooth Gaussian noise of unit variance whose blobs are about ``scale_px`` pixels across."""
    cell = max(int(round(scale_px)), 1)
    if cell == 1:
        return rng.standard_normal(shape, dtype=np.float32)
    offsets = rng.uniform(0, cell, size=2)
    w_rows = _bspline_weights(shape[0], cell, offsets[0])
    w_cols = _bspline_weights(shape[1], cell, offsets[1])
    coarse = rng.standard_normal((w_rows.shape[1], w_cols.shape[1]), dtype=np.float32)
    field = w_rows @ coarse @ w_cols.T
    # Normalise by the expected, not the sampled, variance so small windows keep their amplitude.
    expected = np.sqrt((w_rows**2).sum(axis=1).mean() * (w_cols**2).sum(axis=1).mean())
    return (field / expected).astype(np.float32)


def noise_1d(rng: np.random.Generator, length: int, scale: float) -> np.ndarray:
    """Smooth 1-D noise of unit variance with features ``scale`` samples long."""
    raw = rng.standard_normal(length + 8 * int(scale) + 8)
    smooth = ndimage.gaussian_filter1d(raw, max(scale, 0.5))
    smooth = smooth[4 * int(scale) + 4:][:length]
    return (smooth / smooth.std()).astype(np.float32)


def smoothstep(t: np.ndarray) -> np.ndarray:
    """Smooth ramp from 0 (``t <= 0``) to 1 (``t >= 1``) with zero slope at both ends."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def sample(field: np.ndarray, grid: Grid, x: float, y: float) -> float:
    """Bilinear value of a grid field at a point in scene metres."""
    coords = np.array([[grid.px(y) - 0.5], [grid.px(x) - 0.5]])
    return float(ndimage.map_coordinates(field, coords, order=1, mode="nearest")[0])


def pixel_window(geom: BaseGeometry, grid: Grid, margin_m: float) -> tuple[slice, slice]:
    """Row and column slices of the pixels within ``margin_m`` of the geometry's bounds."""
    x0, y0, x1, y1 = geom.bounds
    return _span(grid, y0 - margin_m, y1 + margin_m), _span(grid, x0 - margin_m, x1 + margin_m)


def _span(grid: Grid, start_m: float, stop_m: float) -> slice:
    start = int(np.clip(math.floor(grid.px(start_m)), 0, grid.n))
    return slice(start, int(np.clip(math.ceil(grid.px(stop_m)), start, grid.n)))


def burn(geom: BaseGeometry, grid: Grid, window: tuple[slice, slice]) -> np.ndarray:
    """Boolean mask of the window's pixel centres inside a geometry given in scene metres."""
    rows, cols = window
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if geom.is_empty or 0 in shape:
        return np.zeros(shape, dtype=bool)
    transform = Affine(grid.p, 0, cols.start * grid.p, 0, grid.p, rows.start * grid.p)
    return rasterize([geom], out_shape=shape, transform=transform, dtype=np.uint8).astype(bool)


def within_scene(geom: BaseGeometry, grid: Grid, margin: float) -> bool:
    """Whether a geometry in scene metres lies at least ``margin`` metres inside the scene."""
    x0, y0, x1, y1 = geom.bounds
    return min(x0, y0) >= margin and max(x1, y1) <= grid.extent - margin


def rasterize_ids(outlines: list[Polygon], grid: Grid, transform: Affine) -> np.ndarray:
    """uint8 raster of landslide ids (1-based), 0 elsewhere; the source of the ground truth."""
    if not outlines:
        return np.zeros(grid.shape, dtype=np.uint8)
    shapes = [(o, i + 1) for i, o in enumerate(outlines)]
    return rasterize(shapes, out_shape=grid.shape, transform=transform, fill=0, dtype=np.uint8)
