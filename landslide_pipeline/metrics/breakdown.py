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


def complexity_scores(reference: np.ndarray, predicted: np.ndarray, density: np.ndarray) -> pd.DataFrame:
    """Precision, recall and F1 per background-complexity class (equal tile counts by edge density)."""
    order = np.argsort(density, kind="stable")
    rows = []
    for name, tiles in zip(COMPLEXITY_CLASSES, np.array_split(order, len(COMPLEXITY_CLASSES))):
        if len(tiles) == 0:
            continue
        scores = segmentation_metrics(confusion_counts(predicted[tiles], reference[tiles]))
        rows.append({"background": name, "n_tiles": len(tiles), "edge_density_max": float(density[tiles].max()),
                     **{k: scores[k] for k in ("precision", "recall", "f1")}})
    return pd.DataFrame(rows)
