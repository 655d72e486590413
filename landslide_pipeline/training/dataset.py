"""The training set: labelled tiles as arrays, their folds, and augmented copies.

Augmented copies carry the fold of the tile they come from; tiles of the held-out test split
(fold -1) are never augmented, trained on, or used for model selection. A fold's model trains on every
sample of the other folds (augmented ones included) and is validated on the original tiles of
its own fold only, so no augmented twin of a validation tile is ever trained on.

A training set may carry reference masks besides its training labels: an object-oriented set
keeps the manual masks of its tiles, so that its models are scored against the same reference
as the manual set's (study A, Table 6), while model selection uses only its own labels.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from landslide_pipeline.training.augment import AugmentationSpec, augment_tile, choose_transforms
from landslide_pipeline.training.folds import TEST_FOLD
from landslide_pipeline.training.features import TERRAIN_BANDS, band_names, tile_features


@dataclass(frozen=True)
class LabelledSurvey:
    """Where one survey's tiles and label masks lie, and its tile table."""

    tiles_dir: Path
    masks_dir: Path
    tiles: pd.DataFrame  # survey_id, tile_id, row_off, col_off, landslide_fraction
    role: str = "train"  # "test": every tile is held out for testing


@dataclass
class TrainingSet:
    """Arrays of all samples; ``tile`` indexes rows of ``tiles`` (the fold table)."""

    x: np.ndarray  # (N, C, H, W) float32
    y: np.ndarray  # (N, H, W) uint8 {0, 1}
    tile: np.ndarray  # (N,) int
    augmented: np.ndarray  # (N,) bool
    tiles: pd.DataFrame  # one row per original tile, with a fold column
    bands: list[str]
    label_source: str = "manual"  # the source of ``y``: manual or obia
    set_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # new for each build
    reference: np.ndarray | None = None  # (n_tiles, H, W) uint8: another source's masks to score against
    reference_source: str | None = None

    def scoring_masks(self, idx: np.ndarray) -> np.ndarray:
        """The masks that samples ``idx`` (original tiles) are scored against: the reference
        masks when the set has them, else its own labels."""
        if self.reference is None:
            return self.y[idx]
        if self.augmented[idx].any():
            raise ValueError("reference masks exist for original tiles only")
        return self.reference[self.tile[idx]]

    @property
    def fold(self) -> np.ndarray:
        return self.tiles["fold"].to_numpy()[self.tile]

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample indices to train on (other folds, augmented copies included) and to validate
        on (this fold's original tiles) for ``fold``; test tiles are in neither."""
        folds = self.fold
        train = (folds != fold) & (folds != TEST_FOLD)
        return np.flatnonzero(train), np.flatnonzero((folds == fold) & ~self.augmented)

    def test_indices(self) -> np.ndarray:
        """Original tiles of the held-out test split, never trained or selected on."""
        return np.flatnonzero((self.fold == TEST_FOLD) & ~self.augmented)

    def save(self, directory: Path) -> None:
        """Writes ``samples.npz`` (no pickled objects) and ``folds.parquet``."""
        extra = {} if self.reference is None else {"reference": self.reference,
                                                   "reference_source": np.array(self.reference_source)}
        np.savez(directory / "samples.npz", x=self.x, y=self.y, tile=self.tile,
                 augmented=self.augmented, bands=np.array(self.bands), set_id=np.array(self.set_id),
                 label_source=np.array(self.label_source), **extra)
        self.tiles.to_parquet(directory / "folds.parquet", index=False)

    @classmethod
    def load(cls, directory: Path) -> TrainingSet:
        with np.load(directory / "samples.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return cls(x=arrays["x"], y=arrays["y"], tile=arrays["tile"], augmented=arrays["augmented"],
                   tiles=pd.read_parquet(directory / "folds.parquet"), bands=[str(b) for b in arrays["bands"]],
                   set_id=str(arrays["set_id"]), label_source=str(arrays.get("label_source", "manual")),
                   reference=arrays.get("reference"),
                   reference_source=str(arrays["reference_source"]) if "reference_source" in arrays else None)


@dataclass(frozen=True)
class Reference:
    """Another label source's mask folders, by survey id."""

    source: str
    masks_dirs: dict[str, Path]

    def mask(self, survey_id: str, tile_id: str) -> np.ndarray:
        path = self.masks_dirs[survey_id] / f"{tile_id}.tif"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no {self.source} mask for tile {tile_id} of survey {survey_id}")
        with rasterio.open(path) as src:
            return src.read(1)


def load_tile(survey: LabelledSurvey, tile_id: str, use_terrain: bool) -> tuple[np.ndarray, np.ndarray]:
    """Reads one tile's input bands and its label mask."""
    with rasterio.open(survey.tiles_dir / "image" / f"{tile_id}.tif") as src:
        image = src.read()
    terrain = None
    if use_terrain:
        terrain_path = survey.tiles_dir / "terrain" / f"{tile_id}.tif"
        if not terrain_path.is_file():
            raise FileNotFoundError(f"{terrain_path}: no terrain tile; the survey has no DEM "
                                    "(set use_terrain=False to train on the image alone)")
        with rasterio.open(terrain_path) as src:
            terrain = src.read()
    with rasterio.open(survey.masks_dir / f"{tile_id}.tif") as src:
        mask = src.read(1)
    return tile_features(image, terrain), mask


def build_training_set(surveys: list[LabelledSurvey], folds: pd.DataFrame, augmentation: AugmentationSpec,
                       seed: int, use_terrain: bool, reference: Reference | None = None,
                       label_source: str = "manual") -> TrainingSet:
    """Loads every labelled tile and adds ``augmentation.factor - 1`` augmented copies of each
    tile that is not in the held-out test split (fold -1).

    Args:
        surveys: The labelled surveys.
        folds: One row per tile (survey_id, tile_id, fold, ...), as made by ``assign_folds``.
        augmentation: How many copies and how strong.
        seed: Seed of the augmentation; copy j of tile i draws from ``(seed, i, j)``.
        use_terrain: Add the DEM-derived slope band.
        reference: Another label source's masks of the same tiles, kept to score against.
        label_source: Where the surveys' masks come from (manual or obia).
    """
    by_id = {s.tiles["survey_id"].iloc[0]: s for s in surveys}
    xs, ys = [], []
    for row in folds.itertuples():
        x, y = load_tile(by_id[row.survey_id], row.tile_id, use_terrain)
        xs.append(x)
        ys.append(y)
    bands = band_names(xs[0].shape[0] - int(use_terrain), use_terrain)
    image_bands = sum(b not in TERRAIN_BANDS for b in bands)
    symmetries = choose_transforms(len(xs), augmentation.factor, seed)
    x_all, y_all, tile, augmented = list(xs), list(ys), list(range(len(xs))), [False] * len(xs)
    for i in np.flatnonzero(folds["fold"].to_numpy() >= 0):
        for j, k in enumerate(symmetries[i]):
            rng = np.random.default_rng([seed, int(i), j])
            x, y = augment_tile(xs[i], ys[i], int(k), augmentation, image_bands, rng)
            x_all.append(x)
            y_all.append(y)
            tile.append(int(i))
            augmented.append(True)
    reference_masks = None if reference is None else np.stack(
        [reference.mask(row.survey_id, row.tile_id) for row in folds.itertuples()]).astype(np.uint8)
    return TrainingSet(x=np.stack(x_all), y=np.stack(y_all).astype(np.uint8), tile=np.array(tile),
                       augmented=np.array(augmented), tiles=folds.reset_index(drop=True), bands=bands,
                       label_source=label_source, reference=reference_masks, reference_source=None if reference is None else reference.source)
