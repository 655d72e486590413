"""The training set: every labelled tile stored once, its fold, and online augmented samples.

On disk (``data/training/<source>/``)::

    images.npy       (N, C, H, W) float32 network input bands (NaN: no data)
    masks.npy        (N, H, W) uint8 {0, 1} training labels
    reference.npy    optional (N, H, W) uint8: another label source's masks, to score against
    folds.parquet    one row per tile, row i = tile i: survey, tile id, group, fold (-1: test split)
    training_set.json  bands, input scaling (the dtype contract), label source, set id

Nothing is held in RAM: :class:`TileArray` reads the tiles a batch asks for straight from the
``.npy`` file with positioned reads. (A memory map would do too, but every page it touches
counts in the process's resident memory, so a 3.5 GB training set would show 3.5 GB RSS by the
end of an epoch; positioned reads go through the page cache, which the kernel reclaims.) The
peak memory of training is therefore one batch of tiles plus the model, whatever the set's
size and however many augmented variants an epoch draws (``training.augment``).

Tiles of the held-out test split (fold -1) are never trained on or used for model selection.
A fold's model trains on the tiles of the other folds (fresh random variants every epoch) and is
validated on its own fold's tiles as they are.

A training set may carry reference masks besides its training labels: an object-oriented set
keeps the manual masks of its tiles, so that its models are scored against the same reference
as the manual set's (study A, Table 6), while model selection uses only its own labels.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import torch
from torch.utils.data import Dataset

from landslide_pipeline.geo.rasters import band_descriptions
from landslide_pipeline.layout import (
    LABEL_INDEX,
    MASK_FOLDER,
    TILE_IMAGES,
    TILE_TERRAIN,
    TRAINING_DESCRIPTION,
    TRAINING_FOLDS,
    TRAINING_IMAGES,
    TRAINING_MASKS,
    TRAINING_REFERENCE,
    DataLayout,
    LabelSource,
)
from landslide_pipeline.nn.segmenter import BandNormalization
from landslide_pipeline.training.augment import (
    AugmentationSpec,
    Draw,
    augment_batch,
    draw_from,
    epoch_uniforms,
    noise_seed,
)
from landslide_pipeline.training.features import (
    TERRAIN_BANDS,
    band_names,
    input_scaling,
    named_terrain,
    tile_features,
    training_terrain_bands,
)
from landslide_pipeline.training.folds import TEST_FOLD


class Tiles(Protocol):
    """A stack of tiles indexable by tile number or an array of them (a numpy array or a TileArray)."""

    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int | np.ndarray) -> np.ndarray: ...


class TileArray:
    """A stored ``.npy`` array read a tile (first-axis entry) at a time, never loaded whole.

    Args:
        path: A C-ordered ``.npy`` file, as ``TileArrayWriter`` or ``np.save`` writes.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran:
            raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.tile_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:  # data loader workers open their own descriptor
        return {**self.__dict__, "_fd": None}

    def _read(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"tile {index} out of range for {len(self)} tiles in {self.path}")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        data = os.pread(self._fd, self.tile_bytes, self.offset + (index % len(self)) * self.tile_bytes)
        if len(data) != self.tile_bytes:
            raise OSError(f"{self.path}: truncated at tile {index}")
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape[1:]).copy()

    def __getitem__(self, index: int | np.integer | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self._read(int(index))
        indices = np.asarray(index).ravel()
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        for i, tile in enumerate(indices):
            out[i] = self._read(int(tile))
        return out

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)  # absent when __init__ failed
        if fd is not None:
            os.close(fd)


class TileArrayWriter:
    """Writes a ``.npy`` array of known shape one tile at a time (constant memory); a context
    manager that checks on a clean exit that every tile was written."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: npt.DTypeLike) -> None:
        self.path, self.shape, self.dtype, self.written = Path(path), shape, np.dtype(dtype), 0
        self._file = open(self.path, "wb")
        np.lib.format.write_array_header_2_0(self._file, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                          "fortran_order": False, "shape": shape})

    def write(self, tile: np.ndarray) -> None:
        if tile.shape != self.shape[1:]:
            raise ValueError(f"{self.path}: tile of shape {tile.shape}, expected {self.shape[1:]}")
        self._file.write(np.ascontiguousarray(tile, dtype=self.dtype).tobytes())
        self.written += 1

    def __enter__(self) -> TileArrayWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._file.close()
        if error_type is None and self.written != self.shape[0]:
            raise ValueError(f"{self.path}: {self.written} tiles written of {self.shape[0]}")


@dataclass(frozen=True)
class LabelledSurvey:
    """Where one survey's tiles and label masks lie, and its tile table.

    ``masks_dir`` may be several folders (the union of label sources): a tile's mask is then the
    pixel-wise union of the masks the folders hold for it.
    """

    tiles_dir: Path
    masks_dir: Path | tuple[Path, ...]
    tiles: pd.DataFrame  # survey_id, tile_id, row_off, col_off, landslide_fraction
    role: str = "train"  # "test": every tile is held out for testing

    def mask(self, tile_id: str) -> np.ndarray:
        """The tile's label mask (uint8 {0, 1}).

        Raises:
            FileNotFoundError: no folder holds a mask of the tile.
        """
        folders = self.masks_dir if isinstance(self.masks_dir, tuple) else (self.masks_dir,)
        masks = []
        for folder in folders:
            if (folder / f"{tile_id}.tif").is_file():
                with rasterio.open(folder / f"{tile_id}.tif") as src:
                    masks.append(src.read(1))
        if not masks:
            raise FileNotFoundError(f"no label mask of tile {tile_id} in {', '.join(map(str, folders))}")
        return np.maximum.reduce(masks) if len(masks) > 1 else masks[0]


@dataclass
class TrainingSet:
    """Every labelled tile once; row i of ``tiles`` (the fold table) describes tile i."""

    images: Tiles  # (N, C, H, W) float32, NaN = no data
    masks: Tiles  # (N, H, W) uint8 {0, 1}
    tiles: pd.DataFrame  # one row per tile, with a fold column
    bands: list[str]
    image_scaling: str = "uint8"  # how image bands were scaled (training.features.input_scaling)
    label_source: str = LabelSource.MANUAL  # the source of ``masks``
    set_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # new for each build
    reference: Tiles | None = None  # (N, H, W) uint8: another source's masks to score against
    reference_source: str | None = None

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.masks) == len(self.tiles):
            raise ValueError(f"{len(self.images)} images, {len(self.masks)} masks and {len(self.tiles)} fold rows")
        if self.images.shape[1] != len(self.bands):
            raise ValueError(f"images have {self.images.shape[1]} bands, names given for {len(self.bands)}")

    @property
    def fold(self) -> np.ndarray:
        return self.tiles["fold"].to_numpy()

    @property
    def image_bands(self) -> int:
        """Leading bands that hold imagery (the rest are terrain)."""
        return sum(b not in TERRAIN_BANDS for b in self.bands)

    def band_indices(self, bands: Sequence[str]) -> list[int]:
        """The positions of ``bands`` among the set's bands (what a model of those bands takes).

        Raises:
            ValueError: a band the set lacks.
        """
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise ValueError(f"the training set has no band {', '.join(missing)} (it has {', '.join(self.bands)})")
        return [self.bands.index(b) for b in bands]

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Tile indices to train on (the other folds) and to validate on (this fold) for ``fold``;
        test tiles are in neither."""
        folds = self.fold
        return np.flatnonzero((folds != fold) & (folds != TEST_FOLD)), np.flatnonzero(folds == fold)

    def test_indices(self) -> np.ndarray:
        """Tiles of the held-out test split, never trained or selected on."""
        return np.flatnonzero(self.fold == TEST_FOLD)

    def shown_indices(self) -> np.ndarray:
        """Tiles to show and break scores down on: the test split, else fold 0's validation tiles."""
        test = self.test_indices()
        return test if len(test) else self.split(0)[1]

    @property
    def scoring(self) -> Tiles:
        """The masks tiles are scored against: the reference masks when the set has them, else
        its own labels."""
        return self.masks if self.reference is None else self.reference

    def scoring_masks(self, idx: np.ndarray) -> np.ndarray:
        """The masks that tiles ``idx`` are scored against."""
        return self.scoring[np.asarray(idx)]

    def describe(self) -> dict:
        return {"bands": self.bands, "image_scaling": self.image_scaling, "label_source": self.label_source,
                "set_id": self.set_id, "reference_source": self.reference_source,
                "tiles": len(self.tiles), "tile_shape": list(self.images.shape[2:])}

    def save(self, directory: Path) -> None:
        """Writes the set (e.g. one built in memory) in the on-disk layout."""
        directory = Path(directory)
        np.save(directory / TRAINING_IMAGES, np.asarray(self.images[np.arange(len(self.images))], dtype=np.float32))
        np.save(directory / TRAINING_MASKS, np.asarray(self.masks[np.arange(len(self.masks))], dtype=np.uint8))
        if self.reference is not None:
            np.save(directory / TRAINING_REFERENCE, np.asarray(self.reference[np.arange(len(self.reference))], dtype=np.uint8))
        self.tiles.to_parquet(directory / TRAINING_FOLDS, index=False)
        (directory / TRAINING_DESCRIPTION).write_text(json.dumps(self.describe(), indent=2))

    @classmethod
    def load(cls, directory: Path) -> TrainingSet:
        """Opens a stored set; its tiles stay on disk and are read as they are asked for.

        Raises:
            FileNotFoundError: no training set there, or one in the format of before online
                augmentation (``samples.npz``): materialize the training set again.
        """
        directory = Path(directory)
        if not (directory / TRAINING_DESCRIPTION).is_file():
            hint = " (an older format: materialize training_set again)" if (directory / "samples.npz").is_file() else ""
            raise FileNotFoundError(f"{directory / TRAINING_DESCRIPTION}: no training set{hint}")
        meta = json.loads((directory / TRAINING_DESCRIPTION).read_text())
        reference = TileArray(directory / TRAINING_REFERENCE) if (directory / TRAINING_REFERENCE).is_file() else None
        return cls(images=TileArray(directory / TRAINING_IMAGES), masks=TileArray(directory / TRAINING_MASKS),
                   tiles=pd.read_parquet(directory / TRAINING_FOLDS), bands=list(meta["bands"]),
                   image_scaling=meta["image_scaling"], label_source=meta["label_source"], set_id=meta["set_id"],
                   reference=reference, reference_source=meta["reference_source"])


def training_set_files(directory: Path) -> list[Path]:
    """The files that hold a stored training set's content (not its random set id): what its data
    version is a fingerprint of."""
    names = [TRAINING_IMAGES, TRAINING_MASKS, TRAINING_REFERENCE, TRAINING_FOLDS]
    return [Path(directory) / name for name in names if (Path(directory) / name).is_file()]


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


def labelled_surveys(layout: DataLayout, survey_ids: Iterable[str], source: str) -> list[LabelledSurvey]:
    """The surveys that have ``source`` label masks, in a stable order; surveys whose role is
    "map" never enter a training set.

    The union source takes every survey with manual or object-oriented masks, and every tile
    either labels; a tile both label gets the pixel-wise union of the two masks, and the larger
    of the two landslide fractions (which only steers the fold stratification).
    """
    surveys = []
    for survey_id in sorted(survey_ids):
        sources = LabelSource.MASK_SOURCES if source == LabelSource.UNION else (source,)
        labelled = [layout.labels(s, survey_id) for s in sources if (layout.labels(s, survey_id) / LABEL_INDEX).is_file()]
        if not labelled:
            continue
        role = json.loads(layout.survey_metadata(survey_id).read_text()).get("role", "train")
        if role == "map":  # a survey to map only
            continue
        tables = [pd.read_parquet(d / LABEL_INDEX).drop(columns="geometry") for d in labelled]
        tiles = pd.concat(tables, ignore_index=True)
        fraction = tiles.groupby("tile_id")["landslide_fraction"].max()
        tiles = tiles.drop_duplicates("tile_id")
        tiles = tiles.assign(landslide_fraction=tiles["tile_id"].map(fraction))
        masks = tuple(d / MASK_FOLDER for d in labelled)
        surveys.append(LabelledSurvey(layout.tiles(survey_id), masks if len(masks) > 1 else masks[0],
                                      tiles.reset_index(drop=True), role))
    return surveys


def load_tile(survey: LabelledSurvey, tile_id: str, use_terrain: bool) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """One tile's input bands (no-data pixels NaN), its label mask, its image's input scaling and
    the terrain bands it holds (every one its terrain tile has, ``features.TERRAIN_ORDER``)."""
    with rasterio.open(survey.tiles_dir / TILE_IMAGES / f"{tile_id}.tif") as src:
        image = src.read()
        invalid = src.dataset_mask() == 0
    terrain, terrain_bands = None, []
    if use_terrain:
        terrain_path = survey.tiles_dir / TILE_TERRAIN / f"{tile_id}.tif"
        if not terrain_path.is_file():
            raise FileNotFoundError(f"{terrain_path}: no terrain tile; the survey has no DEM "
                                    "(set use_terrain=False to train on the image alone)")
        with rasterio.open(terrain_path) as src:
            terrain = named_terrain(src.read(), band_descriptions(terrain_path))
        terrain_bands = training_terrain_bands(list(terrain))
    return (tile_features(image, terrain, invalid, terrain_bands), survey.mask(tile_id), input_scaling(image.dtype),
            terrain_bands)


def build_training_set(surveys: list[LabelledSurvey], folds: pd.DataFrame, use_terrain: bool, directory: Path,
                       reference: Reference | None = None, label_source: str = LabelSource.MANUAL) -> TrainingSet:
    """Writes every labelled tile once into ``directory`` (one tile in memory at a time) and opens it.

    Args:
        surveys: The labelled surveys.
        folds: One row per tile (survey_id, tile_id, fold, ...), as made by ``assign_folds``.
        use_terrain: Add every terrain band the surveys' terrain tiles hold (elevation, slope,
            and hillshade / relief where survey.toml asks for them); models choose among them.
        directory: An empty folder to write the set into.
        reference: Another label source's masks of the same tiles, kept to score against.
        label_source: Where the surveys' masks come from (``LabelSource``).

    Raises:
        ValueError: surveys of different input scaling (e.g. uint8 and uint16 imagery), band
            counts, terrain bands or tile sizes; the message names the first survey and the one
            that differs.
    """
    by_id = {s.tiles["survey_id"].iloc[0]: s for s in surveys}
    folds = folds.reset_index(drop=True)
    rows = list(folds.itertuples())
    first, first_mask, scaling, terrain_bands = load_tile(by_id[rows[0].survey_id], rows[0].tile_id, use_terrain)
    first_id, n_image = rows[0].survey_id, first.shape[0] - len(terrain_bands)
    n = len(rows)
    with contextlib.ExitStack() as stack:
        images = stack.enter_context(TileArrayWriter(directory / TRAINING_IMAGES, (n, *first.shape), np.float32))
        masks = stack.enter_context(TileArrayWriter(directory / TRAINING_MASKS, (n, *first_mask.shape), np.uint8))
        references = None if reference is None else stack.enter_context(
            TileArrayWriter(directory / TRAINING_REFERENCE, (n, *first_mask.shape), np.uint8))
        for row in rows:
            x, y, tile_scaling, tile_terrain = load_tile(by_id[row.survey_id], row.tile_id, use_terrain)
            if tile_scaling != scaling:
                raise ValueError(f"survey {row.survey_id} has {tile_scaling} imagery, others {scaling}: one "
                                 "training set needs one input scaling (convert the imagery or train apart)")
            if tile_terrain != terrain_bands:
                raise ValueError(f"survey {row.survey_id} has terrain bands {tile_terrain}, survey {first_id} "
                                 f"{terrain_bands}: give every survey the same survey.toml terrain_bands")
            if x.shape[0] != first.shape[0]:
                raise ValueError(f"survey {row.survey_id} has {x.shape[0] - len(tile_terrain)} image band(s), survey "
                                 f"{first_id} {n_image}: one training set needs one band count (keep the same "
                                 "bands with survey.toml bands = [...], or train apart)")
            if x.shape != first.shape:
                raise ValueError(f"survey {row.survey_id} has {x.shape[1]}x{x.shape[2]} px tiles, survey {first_id} "
                                 f"{first.shape[1]}x{first.shape[2]} px: tile every survey at one tile size")
            images.write(x)
            masks.write(y)
            if references is not None:
                assert reference is not None  # references is opened only with a reference
                references.write(reference.mask(row.survey_id, row.tile_id))
    bands = band_names(n_image, terrain_bands)
    folds.to_parquet(directory / TRAINING_FOLDS, index=False)
    samples = TrainingSet(TileArray(directory / TRAINING_IMAGES), TileArray(directory / TRAINING_MASKS), folds, bands, scaling,
                          label_source, reference=None if reference is None else TileArray(directory / TRAINING_REFERENCE),
                          reference_source=None if reference is None else reference.source)
    (directory / TRAINING_DESCRIPTION).write_text(json.dumps(samples.describe(), indent=2))
    return samples


class AugmentedTiles(Dataset):
    """Training samples of some tiles, with the random alteration each gets this epoch.

    Item ``i`` is variant ``i // n`` of tile ``indices[i % n]`` in the current epoch (set with
    ``set_epoch`` before each epoch): the tile as stored, its mask and its draw from
    ``(seed, epoch, tile, variant)``. A batch is read in one call (``__getitems__``); its
    normalisation and alterations are applied batch-wise on the training device (``augment``).

    Args:
        samples: The training set.
        indices: Tiles to draw from (a fold's training tiles).
        normalization: The per-band normalisation of the model being trained.
        spec: The alterations.
        seed: Seed of the draws.
        channels: Band indices to keep (all when None), e.g. for an input-band experiment.
    """

    def __init__(self, samples: TrainingSet, indices: np.ndarray, normalization: BandNormalization,
                 spec: AugmentationSpec, seed: int, channels: Sequence[int] | None = None) -> None:
        self.samples, self.indices, self.normalization = samples, np.asarray(indices), normalization
        self.spec, self.seed = spec, seed
        self.channels = None if channels is None else list(channels)
        bands = samples.bands if channels is None else [samples.bands[c] for c in channels]
        self.image_bands = sum(b not in TERRAIN_BANDS for b in bands)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        n_tiles = len(self.samples.images)
        self._uniforms = [epoch_uniforms(self.seed, epoch, n_tiles, r) for r in range(self.spec.draws)]

    def __len__(self) -> int:
        return len(self.indices) * self.spec.draws

    def __getitems__(self, items: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, list[Draw]]:
        n = len(self.indices)
        tiles = self.indices[np.asarray(items) % n]
        repeats = np.asarray(items) // n
        x = self.samples.images[tiles]
        x = x if self.channels is None else x[:, self.channels]
        draws = [draw_from(self.spec, self._uniforms[r][t], noise_seed(self.seed, self.epoch, int(t), int(r)))
                 for t, r in zip(tiles, repeats)]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(self.samples.masks[tiles]), draws

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor, Draw]:
        x, y, draws = self.__getitems__([item])
        return x[0], y[0], draws[0]

    def augment(self, x: torch.Tensor, y: torch.Tensor, draws: list[Draw]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised, altered samples of a batch, on the device ``x`` is on."""
        with torch.no_grad():
            x = self.normalization.to(x.device)(x)
        return augment_batch(x, y, draws, self.spec, self.image_bands)

    @staticmethod
    def collate(batch: tuple[torch.Tensor, torch.Tensor, list[Draw]]) -> tuple[torch.Tensor, torch.Tensor, list[Draw]]:
        """A batch from ``__getitems__`` is already collated."""
        return batch


def batches(indices: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive batches of ``indices``, in order."""
    for start in range(0, len(indices), batch_size):
        yield indices[start:start + batch_size]
