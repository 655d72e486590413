"""Scores broken down the way study B discusses its maps (Figs. 10-12): by landslide size, and by
how busy the background is.

- **Landslide size**: each reference landslide is a connected component (8-connectivity) of a
  tile's mask, put in a size class by its pixel area. A landslide counts as detected when at least
  half of its pixels are predicted; per class the table gives the share detected (object recall)
  and the share of its pixels predicted (pixel recall). Precision has no size of reference to
  belong to, so it is not broken down.
- **Background complexity**: a tile's edge density, the mean gradient magnitude of its image
  bands' mean (bands scaled to unit range first, so it does not depend on the dtype), ranks the
  tiles; they are split into equal-count classes (simple, moderate, complex) and scored with
  confusion counts pooled over each class's pixels.
- **Examples**: ``example_tiles`` picks a few tiles per size class and for the simplest and the
  most complex backgrounds, for panels beside the tables.

Classes are in pixels, not m2: training tiles carry no pixel size. At 0.5 m, 256 px is 64 m2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from landslide_pipeline.metrics.confusion import confusion_counts, segmentation_metrics

#: (name, smallest area, largest area) in pixels, largest exclusive.
SIZE_CLASSES_PX: tuple[tuple[str, float, float], ...] = (
    ("small", 0, 256), ("medium", 256, 2048), ("large", 2048, float("inf")))
COMPLEXITY_CLASSES = ("simple", "moderate", "complex")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def size_class_recall(reference: np.ndarray, predicted: np.ndarray,
                      classes: tuple[tuple[str, float, float], ...] = SIZE_CLASSES_PX) -> pd.DataFrame:
    """Per size class: landslides, detected, object recall and pixel recall.

    Args:
        reference: (N, H, W) reference masks.
        predicted: (N, H, W) predicted masks.
        classes: Size classes in pixels.
    """
    if reference.shape != predicted.shape:
        raise ValueError(f"reference shape {reference.shape} != prediction shape {predicted.shape}")
    areas, hits = [], []
    for ref, pred in zip(reference.astype(bool), predicted.astype(bool)):
        labels, n = ndimage.label(ref, structure=_EIGHT_CONNECTED)
        if n:
            index = np.arange(1, n + 1)
            areas.append(ndimage.sum_labels(ref, labels, index))
            hits.append(ndimage.sum_labels(pred, labels, index))
    area = np.concatenate(areas) if areas else np.zeros(0)
    hit = np.concatenate(hits) if hits else np.zeros(0)
    rows = []
    for name, low, high in classes:
        inside = (area >= low) & (area < high)
        n = int(inside.sum())
        detected = int((hit[inside] >= 0.5 * area[inside]).sum())
        rows.append({"size_class": name, "min_px": low, "max_px": high, "landslides": n, "detected": detected,
                     "object_recall": detected / n if n else float("nan"),
                     "pixel_recall": float(hit[inside].sum() / area[inside].sum()) if n else float("nan")})
    return pd.DataFrame(rows)


def edge_density(images: np.ndarray) -> np.ndarray:
    """(N,) mean gradient magnitude of each tile's band mean, bands scaled to unit range; NaN ignored."""
    x = np.asarray(images, dtype=np.float64)
    low = np.nanmin(x, axis=(0, 2, 3), keepdims=True)
    span = np.nanmax(x, axis=(0, 2, 3), keepdims=True) - low
    mean = np.nanmean((x - low) / np.where(span > 0, span, 1.0), axis=1)
    rows, cols = np.gradient(mean, axis=(1, 2))
    return np.nanmean(np.hypot(rows, cols), axis=(1, 2))


def complexity_classes(density: np.ndarray) -> dict[str, np.ndarray]:
    """The tiles of each background-complexity class: ``COMPLEXITY_CLASSES`` in equal counts by
    ascending edge density (earlier classes one tile larger when the count does not divide).

    Args:
        density: (N,) edge density per tile (``edge_density``).

    Returns:
        Class name -> tile indices in ascending density; a class is empty when N < 3.
    """
    order = np.argsort(density, kind="stable")
    return dict(zip(COMPLEXITY_CLASSES, np.array_split(order, len(COMPLEXITY_CLASSES))))


def complexity_scores(reference: np.ndarray, predicted: np.ndarray, density: np.ndarray) -> pd.DataFrame:
    """Precision, recall and F1 per background-complexity class (equal tile counts by edge density)."""
    rows = []
    for name, tiles in complexity_classes(density).items():
        if len(tiles) == 0:
            continue
        scores = segmentation_metrics(confusion_counts(predicted[tiles], reference[tiles]))
        rows.append({"background": name, "n_tiles": len(tiles), "edge_density_max": float(density[tiles].max()),
                     **{k: scores[k] for k in ("precision", "recall", "f1")}})
    return pd.DataFrame(rows)


def example_tiles(reference: np.ndarray, density: np.ndarray, per_class: int = 2,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """A few tiles to show per class of the breakdown (study B, Figs. 10-12).

    - ``"<size> landslides"`` per class of ``SIZE_CLASSES_PX``: tiles whose reference holds a
      landslide (8-connected component) of that size, those where the class holds the largest
      share of the tile's landslide pixels first; equal shares in a random order drawn from
      ``seed``.
    - ``"simple background"`` and ``"complex background"``: tiles of the first and last class of
      ``complexity_classes``, lowest (respectively highest) edge density first; tiles holding
      landslides come before landslide-free ones. Tiles without a finite density are not shown.

    Args:
        reference: (N, H, W) reference masks.
        density: (N,) edge density per tile (``edge_density``).
        per_class: The most tiles per class (at least 1).
        seed: Seed of the order of equally good size examples.

    Returns:
        Class name -> tile indices (int64, best example first), sizes before backgrounds. Classes
        without any tile to show are left out. The same arguments always give the same tiles.

    Raises:
        ValueError: ``per_class`` is below 1, or the shapes disagree.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    if reference.ndim != 3 or density.shape != (len(reference),):
        raise ValueError(f"reference must be (N, H, W) and density (N,); got {reference.shape} and {density.shape}")
    masks = reference.astype(bool)
    # share[t, c]: fraction of tile t's landslide pixels in landslides of size class c.
    share = np.zeros((len(masks), len(SIZE_CLASSES_PX)))
    for t, mask in enumerate(masks):
        labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        if n:
            areas = np.asarray(ndimage.sum_labels(mask, labels, np.arange(1, n + 1)))
            for c, (_, low, high) in enumerate(SIZE_CLASSES_PX):
                share[t, c] = areas[(areas >= low) & (areas < high)].sum() / areas.sum()
    shuffled = np.random.default_rng(seed).permutation(len(masks))
    examples: dict[str, np.ndarray] = {}
    for c, (size, _, _) in enumerate(SIZE_CLASSES_PX):
        # Stable sort of a seeded shuffle: dominant tiles first, ties in the seed's order.
        ranked = shuffled[np.argsort(-share[shuffled, c], kind="stable")]
        picked = ranked[share[ranked, c] > 0][:per_class]
        if len(picked):
            examples[f"{size} landslides"] = picked.astype(np.int64)
    has_landslide = np.asarray(masks.any(axis=(1, 2)))
    classes = complexity_classes(density)
    for name, descending in ((COMPLEXITY_CLASSES[0], False), (COMPLEXITY_CLASSES[-1], True)):
        tiles = classes[name][np.isfinite(density[classes[name]])]
        tiles = tiles[::-1] if descending else tiles
        picked = np.concatenate([tiles[has_landslide[tiles]], tiles[~has_landslide[tiles]]])[:per_class]
        if len(picked):
            examples[f"{name} background"] = picked.astype(np.int64)
    return examples
