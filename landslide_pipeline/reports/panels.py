"""Qualitative panels: a few tiles, one row each, showing the image, the reference mask and
every architecture's prediction coloured by outcome (true/false positive, false negative).

The cells are built as uint8 RGB arrays first (``panel_rows``) and only then drawn, so the
colours a reader sees can be checked against the legend without reading pixels back from a PNG.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from landslide_pipeline.layout import CLASS_EXAMPLES_PANEL
from landslide_pipeline.reports.plots import save_png
from landslide_pipeline.training.dataset import TrainingSet
from landslide_pipeline.training.evaluate import predict_with_saved_model

#: Test tiles a panel shows.
PANEL_TILES = 4


@dataclass(frozen=True)
class PanelTiles:
    """A few tiles to show, their reference masks and each model's predicted masks."""

    images: np.ndarray  # (N, C, H, W)
    reference: np.ndarray  # (N, H, W)
    predictions: Mapping[str, np.ndarray]  # name -> (N, H, W)
    titles: list[str]

Colour = tuple[int, int, int]

#: Outcome of each pixel of a prediction against the reference, and its colour in the panel.
OUTCOME_COLOURS: dict[str, Colour] = {
    "true positive": (255, 215, 0),
    "false positive": (228, 26, 28),
    "false negative": (55, 126, 184),
    "true negative": (0, 0, 0),
}
#: Colours of the reference mask's landslide and background pixels.
REFERENCE_COLOURS: dict[str, Colour] = {"landslide": (255, 255, 255), "background": (0, 0, 0)}
#: Percentiles of each band that map to black and white in the image column.
STRETCH_PERCENTILES = (2.0, 98.0)


def stretch_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB view of one tile: its first three bands (the first band as grey when it has fewer),
    each stretched linearly so that its 2nd..98th percentiles span 0..255.

    Args:
        image: (C, H, W) float tile; NaN pixels are ignored by the stretch and drawn black.

    Returns:
        (H, W, 3) uint8 array. A constant band is drawn black.
    """
    bands = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    out = np.zeros((*image.shape[1:], 3), dtype=np.uint8)
    for i, band in enumerate(bands.astype(np.float64)):
        if not np.isfinite(band).any():
            continue
        low, high = np.nanpercentile(band, STRETCH_PERCENTILES)
        if high > low:
            scaled = np.clip((band - low) / (high - low), 0.0, 1.0)
            out[..., i] = np.round(np.nan_to_num(scaled, nan=0.0) * 255).astype(np.uint8)
    return out


def mask_rgb(mask: np.ndarray) -> np.ndarray:
    """The reference mask as (H, W, 3) uint8: landslide (nonzero) white on black."""
    out = np.empty((*mask.shape, 3), dtype=np.uint8)
    out[:] = REFERENCE_COLOURS["background"]
    out[mask.astype(bool)] = REFERENCE_COLOURS["landslide"]
    return out


def outcome_rgb(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """A prediction coloured by outcome against the reference (``OUTCOME_COLOURS``).

    Args:
        prediction: (H, W) mask, nonzero = landslide.
        reference: (H, W) mask of the same shape.

    Returns:
        (H, W, 3) uint8 array.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction shape {prediction.shape} != reference shape {reference.shape}")
    pred, ref = prediction.astype(bool), reference.astype(bool)
    out = np.empty((*pred.shape, 3), dtype=np.uint8)
    out[:] = OUTCOME_COLOURS["true negative"]
    out[pred & ref] = OUTCOME_COLOURS["true positive"]
    out[pred & ~ref] = OUTCOME_COLOURS["false positive"]
    out[~pred & ref] = OUTCOME_COLOURS["false negative"]
    return out


def check_panel_inputs(images: np.ndarray, reference: np.ndarray, predictions: Mapping[str, np.ndarray]) -> None:
    """Raises a ValueError unless images are (N, C, H, W), the reference (N, H, W) and every
    prediction the reference's shape."""
    if images.ndim != 4 or reference.ndim != 3:
        raise ValueError(f"images must be (N, C, H, W) and reference (N, H, W); got {images.shape} and {reference.shape}")
    if len(reference) == 0:
        raise ValueError("no tiles to draw")
    if (images.shape[0], *images.shape[2:]) != reference.shape:
        raise ValueError(f"images {images.shape} and reference {reference.shape} differ in tiles or size")
    for architecture, prediction in predictions.items():
        if prediction.shape != reference.shape:
            raise ValueError(f"predictions of {architecture!r} have shape {prediction.shape}, "
                             f"the reference {reference.shape}")


def panel_rows(images: np.ndarray, reference: np.ndarray,
               predictions: Mapping[str, np.ndarray]) -> list[list[np.ndarray]]:
    """The cells of a panel as RGB arrays: per tile, [image, reference, *predictions in the
    mapping's order].

    Args:
        images: (N, C, H, W) float tiles.
        reference: (N, H, W) {0, 1} masks.
        predictions: Architecture -> (N, H, W) {0, 1} predicted masks.

    Returns:
        N rows of 2 + len(predictions) (H, W, 3) uint8 arrays.
    """
    check_panel_inputs(images, reference, predictions)
    return [[stretch_rgb(images[i]), mask_rgb(reference[i]),
             *(outcome_rgb(p[i], reference[i]) for p in predictions.values())]
            for i in range(len(reference))]


def qualitative_panel(images: np.ndarray, reference: np.ndarray, predictions: Mapping[str, np.ndarray],
                      path: Path, titles: Sequence[str] | None = None) -> Path:
    """Draws a qualitative panel: one row per tile, columns image | reference | one per
    architecture, predictions coloured by outcome, with a legend of the outcome colours.

    Args:
        images: (N, C, H, W) float tiles (RGB from the first three bands, 2-98 % stretched).
        reference: (N, H, W) {0, 1} reference masks.
        predictions: Architecture -> (N, H, W) {0, 1} predicted masks.
        path: The PNG to write.
        titles: A label per tile (e.g. tile ids); default "tile 0", "tile 1", ...

    Returns:
        ``path``.

    Raises:
        ValueError: shapes disagree, or ``titles`` does not have one label per tile.
    """
    rows = panel_rows(images, reference, predictions)
    titles = [f"tile {i}" for i in range(len(rows))] if titles is None else list(titles)
    if len(titles) != len(rows):
        raise ValueError(f"{len(titles)} titles for {len(rows)} tiles")
    columns = ["image", "reference", *predictions]
    fig = Figure(figsize=(2.2 * len(columns), 2.2 * len(rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, (cells, title) in enumerate(zip(rows, titles)):
        for c, cell in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(cell, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize="medium")
        axes[r, 0].set_ylabel(title, fontsize="small")
    handles = [Patch(facecolor=_fraction(colour), edgecolor="grey", label=label)
               for label, colour in OUTCOME_COLOURS.items()]
    # Two legend columns when the figure is too narrow for four side by side.
    fig.legend(handles=handles, loc="outside lower center", ncols=4 if len(columns) >= 4 else 2, fontsize="small")
    return save_png(fig, path)


def class_slug(name: str) -> str:
    """A class name as a file-name part: lower case, runs of other characters than letters and
    digits as one underscore ("small landslides" -> "small_landslides")."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise ValueError(f"class name {name!r} has no letters or digits to name a file by")
    return slug


def class_panels(images: np.ndarray, reference: np.ndarray, predictions: Mapping[str, np.ndarray],
                 examples: Mapping[str, np.ndarray], directory: Path,
                 titles: Sequence[str] | None = None) -> dict[str, Path]:
    """One qualitative panel per class of example tiles (study B, Figs. 10-12), e.g. of
    ``metrics.breakdown.example_tiles``: ``CLASS_EXAMPLES_PANEL`` named by the class's slug.

    Args:
        images: (N, C, H, W) float tiles the examples index.
        reference: (N, H, W) {0, 1} reference masks.
        predictions: Architecture -> (N, H, W) {0, 1} predicted masks.
        examples: Class name -> indices of its tiles; a class without tiles gets no panel.
        directory: The folder the PNGs are written into.
        titles: A label per tile of ``images`` (e.g. tile ids); default "tile <index>".

    Returns:
        Class name -> its PNG, in the order of ``examples``.

    Raises:
        ValueError: shapes disagree, ``titles`` does not have one label per tile, or two class
            names give the same file name.
    """
    check_panel_inputs(images, reference, predictions)
    if titles is not None and len(titles) != len(reference):
        raise ValueError(f"{len(titles)} titles for {len(reference)} tiles")
    slugs = [class_slug(name) for name in examples]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"class names {list(examples)} do not give distinct file names")
    paths: dict[str, Path] = {}
    for (name, tiles), slug in zip(examples.items(), slugs):
        idx = np.asarray(tiles, dtype=np.int64)
        if len(idx) == 0:
            continue
        labels = [f"tile {i}" if titles is None else str(titles[i]) for i in idx]
        paths[name] = qualitative_panel(images[idx], reference[idx], {k: p[idx] for k, p in predictions.items()},
                                        Path(directory) / CLASS_EXAMPLES_PANEL.format(slug), labels)
    return paths


def _fraction(colour: Colour) -> tuple[float, float, float]:
    """An 0..255 colour as the 0..1 RGB triple matplotlib takes."""
    red, green, blue = colour
    return red / 255, green / 255, blue / 255


def pick_panel_tiles(reference: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Chooses up to ``n`` tiles to show, tiles holding landslides first: a random draw among
    them (representative rather than the largest), topped up with landslide-free tiles when
    there are too few. The same arguments always give the same tiles.

    Args:
        reference: (N, H, W) reference masks.
        n: How many tiles (at least 1); fewer when there are fewer tiles.
        seed: Seed of the draw.

    Returns:
        Tile indices: those with landslides (ascending), then those without (ascending).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    has_landslide = reference.reshape(len(reference), -1).astype(bool).any(axis=1)
    rng = np.random.default_rng(seed)
    with_landslides = np.sort(rng.permutation(np.flatnonzero(has_landslide))[:n])
    without = np.sort(rng.permutation(np.flatnonzero(~has_landslide))[:n - len(with_landslides)])
    return np.concatenate([with_landslides, without]).astype(np.int64)


def panel_tiles(samples: TrainingSet, models: Mapping[str, Path], n_tiles: int = PANEL_TILES,
                seed: int = 0) -> PanelTiles:
    """A few held-out test tiles (validation tiles of fold 0 without a test split), their
    reference masks and each named model's predictions (at its own threshold)."""
    pool = samples.shown_indices()
    reference_all = samples.scoring_masks(pool)
    chosen = pick_panel_tiles(reference_all, min(n_tiles, len(pool)), seed)
    idx = pool[chosen]
    images = samples.images[idx]
    predictions = {name: predict_with_saved_model(path, images, bands=samples.bands) for name, path in models.items()}
    titles = [str(samples.tiles["tile_id"].iloc[i]) for i in idx]
    return PanelTiles(images, reference_all[chosen], predictions, titles)
