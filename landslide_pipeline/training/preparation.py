"""From labelled surveys to a training set on disk: which surveys, which folds, which reference.

The manual training set assigns folds (random or in spatial blocks) and a test split; another
label source's set (object-oriented, union) inherits them from the manual set on the tiles both
hold, so a fold's models of every source are validated on the same manual tiles, and assigns its
own folds to the tiles only it labels (only the manual set's tiles are scored when there is one:
``training.evaluate.scoring_set``). When every one of its tiles has a manual
mask, it keeps those masks as a reference to score against too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from landslide_pipeline.layout import TRAINING_FOLDS, DataLayout, LabelSource
from landslide_pipeline.schemas import FoldAssignment
from landslide_pipeline.training.dataset import (
    LabelledSurvey,
    Reference,
    TrainingSet,
    build_training_set,
    labelled_surveys,
)
from landslide_pipeline.training.folds import assign_folds, inherit_folds


@dataclass(frozen=True)
class FoldOptions:
    """How tiles are split into folds and a test split.

    Attributes:
        n_folds: Cross-validation folds.
        strategy: "spatial" (blocks of neighbouring tiles share a fold) or "random".
        block_tiles: Side of a spatial block, in tiles.
        test_fraction: Share of the blocks held out for testing (unless a survey has role "test").
        seed: Seed of the assignment.
    """

    n_folds: int
    strategy: Literal["random", "spatial"] = "spatial"
    block_tiles: int = 2
    test_fraction: float = 0.15
    seed: int = 0


@dataclass(frozen=True)
class PreparedTrainingSet:
    """A training set just written, and where it came from."""

    samples: TrainingSet
    surveys: list[LabelledSurvey]
    reference: Reference | None

    @property
    def survey_ids(self) -> list[str]:
        """The surveys whose tiles it holds."""
        return [s.tiles["survey_id"].iloc[0] for s in self.surveys]

    def fold_summary(self) -> pd.DataFrame:
        """Tiles and mean landslide fraction per fold (the test split is ``TEST_FOLD``)."""
        return self.samples.tiles.groupby("fold").agg(tiles=("tile_id", "size"),
                                                      landslide=("landslide_fraction", "mean"))


def fold_table(surveys: list[LabelledSurvey], options: FoldOptions, inherit_from: Path | None) -> pd.DataFrame:
    """The folds of the surveys' tiles: inherited from another label source's training set when
    ``inherit_from`` holds one (same folds and test split on the tiles they share), assigned for
    the rest."""
    tiles = pd.concat([s.tiles for s in surveys], ignore_index=True)
    test_surveys = tuple(s.tiles["survey_id"].iloc[0] for s in surveys if s.role == "test")
    if inherit_from is None or not (inherit_from / TRAINING_FOLDS).is_file():
        return _assign(tiles, options, test_surveys)
    assigned = pd.read_parquet(inherit_from / TRAINING_FOLDS)
    keys = ["survey_id", "tile_id"]
    shared = tiles.merge(assigned[keys], on=keys, how="left", indicator=True)["_merge"].eq("both").to_numpy()
    if not shared.any():
        return _assign(tiles, options, test_surveys)
    inherited = inherit_folds(tiles[shared], assigned)
    if shared.all():
        return inherited
    return pd.concat([inherited, _assign(tiles[~shared], options, test_surveys)], ignore_index=True)


def _assign(tiles: pd.DataFrame, options: FoldOptions, test_surveys: tuple[str, ...]) -> pd.DataFrame:
    block_px = options.block_tiles * int(tiles["height"].max())
    return assign_folds(tiles, options.n_folds, options.seed, options.strategy, block_px, options.test_fraction,
                        test_surveys)


def has_labels(layout: DataLayout, survey_ids: Iterable[str], source: str) -> bool:
    """Whether any of the surveys has ``source`` label masks."""
    return bool(labelled_surveys(layout, survey_ids, source))


def prepare_training_set(layout: DataLayout, survey_ids: Iterable[str], source: str, options: FoldOptions,
                         use_terrain: bool, out_dir: Path) -> PreparedTrainingSet:
    """Writes the training set of one label source into ``out_dir``.

    Args:
        layout: The data folder.
        survey_ids: The surveys to look at; those without ``source`` labels are left out.
        source: The label source (``LabelSource``).
        options: The fold assignment (ignored where folds are inherited).
        use_terrain: Add the terrain bands of the surveys' DEMs (models choose their input set).
        out_dir: Where to write (a staging folder).

    Raises:
        ValueError: no survey has ``source`` labels.
    """
    surveys = labelled_surveys(layout, survey_ids, source)
    if not surveys:
        hint = " (add landslides.gpkg to it)" if source == LabelSource.MANUAL else ""
        raise ValueError(f"no survey has {source} labels: materialize {source}_labels of a survey first{hint}")
    manual_set = layout.training_set(LabelSource.MANUAL) if source != LabelSource.MANUAL else None
    folds = fold_table(surveys, options, manual_set)
    FoldAssignment.validate(folds[list(FoldAssignment.to_schema().columns)])
    reference = None
    if manual_set is not None and (manual_set / TRAINING_FOLDS).is_file():
        masks = {s: layout.label_masks(LabelSource.MANUAL, s) for s in folds["survey_id"].unique()}
        if all((masks[r.survey_id] / f"{r.tile_id}.tif").is_file() for r in folds.itertuples()):
            reference = Reference(LabelSource.MANUAL, masks)
    samples = build_training_set(surveys, folds, use_terrain, out_dir, reference, source)
    return PreparedTrainingSet(samples, surveys, reference)
