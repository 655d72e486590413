"""Grey-level co-occurrence (GLCM) texture of objects, accumulated window by window.

Each object's GLCM counts the pairs of horizontally and vertically adjacent pixels that both lie
inside it (symmetric: every pair counts both ways, as eCognition's "all directions" does for the
two axes). Grey levels are brightness relative to the object's mean brightness, ``levels / 2``
levels per mean (``quantise_relative``): terrain shading multiplies brightness, so a rough slope
facing away from the sun keeps the texture it has in the sun, and the same surface gives the same
texture in every survey. A window passes its pixels with one extra row above and one extra column
to its left, so pairs across window borders are counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

TEXTURE_FEATURES = ("glcm_contrast", "glcm_homogeneity", "glcm_entropy")


def quantise_relative(brightness: np.ndarray, reference: np.ndarray, levels: int) -> np.ndarray:
    """Grey levels 0..levels-1 of brightness over a reference (the object's mean) times levels / 2."""
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(reference > 0, brightness / reference, 1.0) * (levels / 2.0)
    return np.clip(np.rint(scaled), 0, levels - 1).astype(np.uint8)


@dataclass
class CooccurrenceAccumulator:
    """Sparse per-object GLCMs summed over windows.

    Attributes:
        n_objects: Number of objects (ids 0..n-1).
        levels: Number of grey levels.
    """

    n_objects: int
    levels: int
    _parts: list[sparse.csr_matrix] = field(default_factory=list)

    def add(self, objects: np.ndarray, grey: np.ndarray, halo_top: bool, halo_left: bool) -> None:
        """Counts the pixel pairs of one window.

        Args:
            objects: (h, w) object ids, -1 outside every object.
            grey: (h, w) grey levels from ``quantise_relative``.
            halo_top: The first row belongs to the window above (only its vertical pairs count).
            halo_left: The first column belongs to the window to the left (likewise).
        """
        rows = slice(1 if halo_top else 0, None)
        cols = slice(1 if halo_left else 0, None)
        pairs = [_pairs(objects[rows, :-1], objects[rows, 1:], grey[rows, :-1], grey[rows, 1:]),
                 _pairs(objects[:-1, cols], objects[1:, cols], grey[:-1, cols], grey[1:, cols])]
        obj = np.concatenate([p[0] for p in pairs])
        first = np.concatenate([p[1] for p in pairs]).astype(np.int64)
        second = np.concatenate([p[2] for p in pairs]).astype(np.int64)
        # Count densely over the objects present in this window only, then keep the non-zeros.
        present = np.zeros(self.n_objects, dtype=bool)
        present[obj] = True
        ids = np.flatnonzero(present)
        local = np.cumsum(present) - 1
        levels = self.levels
        codes = (local[obj] * levels + first) * levels + second
        dense = np.bincount(codes, minlength=len(ids) * levels**2).reshape(len(ids), levels, levels)
        symmetric = (dense + dense.transpose(0, 2, 1)).reshape(len(ids), levels**2)  # both orders of each pair
        r, c = np.nonzero(symmetric)
        self._parts.append(sparse.csr_matrix((symmetric[r, c].astype(np.float64), (ids[r], c)),
                                             shape=(self.n_objects, levels**2)))
        if len(self._parts) > 16:  # bound the memory of many windows
            self._parts = [_total(self._parts)]

    def features(self) -> dict[str, np.ndarray]:
        """GLCM contrast, homogeneity and entropy (natural log) per object; NaN without pairs."""
        if not self._parts:
            return {name: np.full(self.n_objects, np.nan) for name in TEXTURE_FEATURES}
        counts = _total(self._parts)
        row = np.repeat(np.arange(self.n_objects), np.diff(counts.indptr))
        total = np.bincount(row, counts.data, self.n_objects)
        p = counts.data / total[row]
        i, j = np.divmod(counts.indices, self.levels)
        square = (i - j).astype(np.float64) ** 2
        with np.errstate(invalid="ignore"):
            return {
                "glcm_contrast": _per_row(row, p * square, total, self.n_objects),
                "glcm_homogeneity": _per_row(row, p / (1.0 + square), total, self.n_objects),
                "glcm_entropy": _per_row(row, -p * np.log(p), total, self.n_objects),
            }


def _pairs(a: np.ndarray, b: np.ndarray, ga: np.ndarray, gb: np.ndarray) -> tuple[np.ndarray, ...]:
    """(object, grey level, grey level) of each adjacent pixel pair that lies inside one object."""
    same = (a == b) & (a >= 0)
    return a[same].astype(np.int64), ga[same], gb[same]


def _total(parts: list[sparse.csr_matrix]) -> sparse.csr_matrix:
    counts = sum(parts[1:], parts[0]).tocsr()
    counts.sum_duplicates()
    return counts


def _per_row(row: np.ndarray, values: np.ndarray, total: np.ndarray, n: int) -> np.ndarray:
    summed = np.bincount(row, values, n)
    return np.where(total > 0, summed, np.nan)
