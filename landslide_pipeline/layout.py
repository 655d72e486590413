"""Where every stage of the pipeline keeps its files under the data folder.

```
data/
  raw/<survey_id>/            image.tif, dem.tif (optional), landslides.gpkg (optional)
  surveys/<survey_id>.json    validated survey metadata
  tiles/<survey_id>/          tiles.parquet (GeoParquet tile index), image/<tile>.tif, terrain/<tile>.tif
  labels/<source>/<survey_id>/ labels.parquet, masks/<tile>.tif (source: manual or obia)
  agreement/<survey_id>.parquet  object-oriented vs manual labels (and vs ground truth)
  training/<source>/          images.npy, masks.npy (each tile once), folds.parquet, training_set.json
  models/<source>/<architecture>/fold_<k>/  weights.pt (state dict), model.json, calibration.json
  models/<source>/<architecture>/ensemble/  the fold models as one model (weights.pt, model.json)
  checkpoints/<source>/<architecture>/fold_<k>/<training set>-<config>.pt   while training (resume)
  evaluation/                 evaluation.parquet, evaluation.csv (models trained on manual labels)
  comparison/                 label_sources.parquet, .csv: manual vs object-oriented training labels
  reports/<experiment>/       report.md, plots (PNG), summary.csv
  maps/<survey_id>/           probability.tif, mask.tif (COG), landslides.gpkg, map.json (which model made it)
  changes/<survey_id>/        changes.gpkg, changes.parquet, summary.json (against the site's previous survey)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: The tile index of a survey's tiles, and of its labels (with the landslide fraction of each tile).
TILE_INDEX = "tiles.parquet"
LABEL_INDEX = "labels.parquet"
#: The label masks of a survey, one GeoTIFF per tile, under its labels folder.
MASK_FOLDER = "masks"

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

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    def raw_survey(self, survey_id: str) -> Path:
        return self.raw / validate_survey_id(survey_id)

    def survey_metadata(self, survey_id: str) -> Path:
        return self.root / "surveys" / f"{validate_survey_id(survey_id)}.json"

    def tiles(self, survey_id: str) -> Path:
        return self.root / "tiles" / validate_survey_id(survey_id)

    def labels(self, source: str, survey_id: str) -> Path:
        return self.root / "labels" / source / validate_survey_id(survey_id)

    def agreement(self, survey_id: str) -> Path:
        """Agreement table of a survey's label sources."""
        return self.root / "agreement" / f"{validate_survey_id(survey_id)}.parquet"

    def training_set(self, source: str) -> Path:
        return self.root / "training" / source

    def model(self, source: str, architecture: str, fold: int) -> Path:
        """One fold model trained on ``source`` labels."""
        return self.root / "models" / source / architecture / f"fold_{fold}"

    def ensemble(self, source: str, architecture: str) -> Path:
        """The ensemble of an architecture's fold models trained on ``source`` labels."""
        return self.root / "models" / source / architecture / "ensemble"

    def checkpoint(self, source: str, architecture: str, fold: int, run_key: str) -> Path:
        """Per-epoch training state of one model, kept only until its training completes."""
        return self.root / "checkpoints" / source / architecture / f"fold_{fold}" / f"{run_key}.pt"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    def map(self, survey_id: str) -> Path:
        """A survey's landslide map."""
        return self.root / "maps" / validate_survey_id(survey_id)

    def changes(self, survey_id: str) -> Path:
        """Landslide changes since the site's previous survey."""
        return self.root / "changes" / validate_survey_id(survey_id)

    @property
    def reports(self) -> Path:
        """One folder per experiment report."""
        return self.root / "reports"

    @property
    def comparison(self) -> Path:
        """The label-source comparison (study A, Table 6)."""
        return self.root / "comparison"
