"""Where every stage of the pipeline keeps its files under the data folder: the one home of every
name on disk. Modules that write or read a file take its name from here.

```
data/
  raw/<survey_id>/            image.tif, dem.tif (optional), landslides.gpkg (optional)
  surveys/<survey_id>.json    validated survey metadata
  tiles/<survey_id>/          tiles.parquet (GeoParquet tile index), image/<tile>.tif, terrain/<tile>.tif
  labels/<source>/<survey_id>/ labels.parquet, masks/<tile>.tif (source: manual or obia), segments.parquet + thresholds.json (obia)
  agreement/<survey_id>.parquet  object-oriented vs manual labels (and vs ground truth)
  training/<source>/          images.npy (every band the DEMs give), masks.npy (each tile once), folds.parquet, training_set.json (source: manual, obia or union)
  models/<source>/<variant>/fold_<k>/  weights.pt (state dict), model.json, calibration.json (variant: linknet, linknet@rgb, ...)
  models/<source>/<variant>/ensemble/  the fold models as one model (weights.pt, model.json)
  checkpoints/<source>/<variant>/fold_<k>/<training set>-<config>.pt   while training (resume)
  evaluation/                 evaluation.parquet, evaluation.csv (every model of every label source)
  comparison/                 label_sources.parquet, .csv: the variants trained on two or more label sources
  reports/<experiment>/       report.md, plots (PNG), summary.csv, table.parquet/.csv
  maps/<survey_id>/           probability.tif, mask.tif (COG; mask with a colour table), their QGIS styles (.qml),
                              landslides.gpkg (with its layer style), map.json (which model made it),
                              quicklook.png and report.md (a first look: outlines, counts, largest landslides)
  changes/<survey_id>/        changes.gpkg, changes.parquet, summary.json (against the site's previous survey)
  sites/<site>/               history.csv, history.png: landslide count and area per survey date, new/grown/gone
```
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final


class LabelSource:
    """Where a training set's label masks come from: drawn by hand, object-oriented (study A), or
    their union (every tile either labels; the pixel-wise union where both do).

    Plain strings (not an Enum): they travel into Dagster metadata, MLflow tags, Parquet columns
    and JSON as they are.
    """

    MANUAL: Final = "manual"
    OBIA: Final = "obia"
    UNION: Final = "union"
    #: The sources that label surveys (``labels/<source>/``); the union is made from them.
    MASK_SOURCES: Final = (MANUAL, OBIA)
    ALL: Final = (MANUAL, OBIA, UNION)

    @staticmethod
    def asset_prefix(source: str) -> str:
        """The prefix of a source's training assets: none for manual labels, ``<source>_`` otherwise."""
        return "" if source == LabelSource.MANUAL else f"{source}_"

    @classmethod
    def check(cls, source: str) -> str:
        """``source`` if it names a label source, else ValueError."""
        if source not in cls.ALL:
            raise ValueError(f"unknown label source {source!r}; use one of {cls.ALL}")
        return source


# A raw survey folder's files by convention (survey.toml may name others).
SURVEY_CONFIG = "survey.toml"
RAW_IMAGE = "image.tif"
RAW_DEM = "dem.tif"
RAW_LABELS = ("landslides.gpkg", "landslides.geojson", "landslides.shp", "landslides.json")  # first found wins
GROUND_TRUTH = "ground_truth.tif"  # synthetic surveys only: the true landslide raster

# Tiles and labels of a survey.
TILE_INDEX = "tiles.parquet"  # GeoParquet tile index of a survey's tiles
LABEL_INDEX = "labels.parquet"  # the tile index of its labels, with each tile's landslide fraction
TILE_IMAGES = "image"  # image tiles, <tile>.tif
TILE_TERRAIN = "terrain"  # DEM-derived tiles (elevation, slope, ...), <tile>.tif
MASK_FOLDER = "masks"  # label masks, <tile>.tif
OBIA_THRESHOLDS = "thresholds.json"  # the rule thresholds object-oriented labelling used
OBIA_SEGMENTS = "segments.parquet"  # the classified objects: outlines, features, class
# A training set (training.dataset).
TRAINING_IMAGES = "images.npy"
TRAINING_MASKS = "masks.npy"
TRAINING_REFERENCE = "reference.npy"
TRAINING_FOLDS = "folds.parquet"
TRAINING_DESCRIPTION = "training_set.json"
# A saved model (training.checkpoint).
MODEL_WEIGHTS = "weights.pt"
MODEL_DESCRIPTION = "model.json"
MODEL_CALIBRATION = "calibration.json"
# Tables and reports.
EVALUATION_TABLE = "evaluation.parquet"
LABEL_SOURCE_TABLE = "label_sources.parquet"
EXPERIMENT_TABLE = "table.parquet"
REPORT = "report.md"
REPORT_SUMMARY = "summary.csv"
IMPROVEMENT_TABLE = "improvement.csv"  # training-size study: one architecture's relative change over another
BY_LANDSLIDE_SIZE = "by_landslide_size.csv"  # architecture report: recall per landslide size class
BY_BACKGROUND = "by_background.csv"  # architecture report: scores per background-complexity class
ARCHITECTURES_REPORT = "architectures"  # the folder of the architecture comparison under reports/
CLASS_EXAMPLES_PANEL = "examples_{}.png"  # architecture report: example tiles of one breakdown class ({}: its slug)
# Maps and changes.
MAP_PROBABILITY = "probability.tif"
MAP_MASK = "mask.tif"
MAP_POLYGONS = "landslides.gpkg"
MAP_FACTS = "map.json"
MAP_QUICKLOOK = "quicklook.png"
MAP_REPORT = "report.md"
CHANGES_POLYGONS = "changes.gpkg"
CHANGES_TABLE = "changes.parquet"
CHANGES_SUMMARY = "summary.json"
SITE_HISTORY = "history.csv"  # a site's landslides survey by survey
SITE_HISTORY_PLOT = "history.png"


def csv_twin(name: str) -> str:
    """The CSV copy written beside a Parquet table, for spreadsheets."""
    return name.removesuffix(".parquet") + ".csv"

_SURVEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class InvalidSurveyIdError(ValueError):
    """A survey id that could escape the data folder or is not a plain name."""


def validate_survey_id(survey_id: str) -> str:
    """Returns ``survey_id`` if it is a safe folder name, else raises InvalidSurveyIdError.

    Survey ids become folder names and Dagster partition keys, so path separators, ``..`` and
    leading dots are refused.
    """
    if not _SURVEY_ID.match(survey_id) or ".." in survey_id:
        raise InvalidSurveyIdError(
            f"invalid survey id {survey_id!r}: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit, without '..' or path separators"
        )
    return survey_id


@dataclass(frozen=True)
class DataLayout:
    """Paths of every pipeline output below one data folder."""

    root: Path

    #: The top folders of every generated output (all but ``raw/``, the user's surveys).
    GENERATED: ClassVar[tuple[str, ...]] = ("surveys", "tiles", "labels", "agreement", "training", "models",
                                            "checkpoints", "evaluation", "maps", "changes", "reports", "comparison",
                                            "sites")

    def generated(self) -> list[Path]:
        """Every generated output's top folder that exists."""
        return [self.root / name for name in self.GENERATED if (self.root / name).exists()]

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    def raw_survey(self, survey_id: str) -> Path:
        return self.raw / validate_survey_id(survey_id)

    def survey_metadata(self, survey_id: str) -> Path:
        return self.root / "surveys" / f"{validate_survey_id(survey_id)}.json"

    def tiles(self, survey_id: str) -> Path:
        return self.root / "tiles" / validate_survey_id(survey_id)

    def tile_index(self, survey_id: str) -> Path:
        return self.tiles(survey_id) / TILE_INDEX

    def labels(self, source: str, survey_id: str) -> Path:
        return self.root / "labels" / LabelSource.check(source) / validate_survey_id(survey_id)

    def label_index(self, source: str, survey_id: str) -> Path:
        return self.labels(source, survey_id) / LABEL_INDEX

    def label_masks(self, source: str, survey_id: str) -> Path:
        return self.labels(source, survey_id) / MASK_FOLDER

    def agreement(self, survey_id: str) -> Path:
        """Agreement table of a survey's label sources."""
        return self.root / "agreement" / f"{validate_survey_id(survey_id)}.parquet"

    def training_set(self, source: str) -> Path:
        return self.root / "training" / LabelSource.check(source)

    def training_folds(self, source: str) -> Path:
        """The fold table of a label source's training set."""
        return self.training_set(source) / TRAINING_FOLDS

    @property
    def models(self) -> Path:
        """Every saved model: ``models/<source>/<architecture>/{fold_<k>,ensemble}/``."""
        return self.root / "models"

    def model(self, source: str, architecture: str, fold: int) -> Path:
        """One fold model trained on ``source`` labels."""
        return self.root / "models" / source / architecture / f"fold_{fold}"

    def ensemble(self, source: str, architecture: str) -> Path:
        """The ensemble of an architecture's fold models trained on ``source`` labels."""
        return self.root / "models" / source / architecture / "ensemble"

    def checkpoint(self, source: str, architecture: str, fold: int, run_key: str) -> Path:
        """Per-epoch training state of one model, kept only until its training completes."""
        return self.root / "checkpoints" / source / architecture / f"fold_{fold}" / f"{run_key}.pt"

    def tracking_lock(self, name: str) -> Path:
        """What a find-or-create in the MLflow store locks (``storage.target_lock``: its lock file
        lies beside it, in the shared data folder), e.g. one cross-validation's parent run."""
        return self.root / "checkpoints" / f"mlflow-{hashlib.sha256(name.encode()).hexdigest()[:16]}"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    @property
    def evaluation_table(self) -> Path:
        return self.evaluation / EVALUATION_TABLE

    def map(self, survey_id: str) -> Path:
        """A survey's landslide map."""
        return self.root / "maps" / validate_survey_id(survey_id)

    def site(self, site: str) -> Path:
        """A site's history across its surveys (``history.csv``, ``history.png``)."""
        return self.root / "sites" / validate_survey_id(site)

    def changes(self, survey_id: str) -> Path:
        """Landslide changes since the site's previous survey."""
        return self.root / "changes" / validate_survey_id(survey_id)

    @property
    def reports(self) -> Path:
        """One folder per experiment report."""
        return self.root / "reports"

    def report(self, experiment: str) -> Path:
        """An experiment's report folder (report.md, plots, summary.csv, table)."""
        return self.reports / experiment

    @property
    def comparison(self) -> Path:
        """The label-source comparison (study A, Table 6)."""
        return self.root / "comparison"

    @property
    def label_source_table(self) -> Path:
        return self.comparison / LABEL_SOURCE_TABLE
