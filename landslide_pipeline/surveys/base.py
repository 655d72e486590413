"""What every kind of survey answers, whatever its files: the ``Survey`` protocol.

A survey is one folder under ``data/raw/<survey_id>/``. Two kinds exist (``survey.toml``
``kind``): a **scene** (an orthomosaic, maybe a DEM and label polygons; ``surveys.scene``) and a
pre-cut **tile data set** (image/mask pairs read through an adapter; ``surveys.tileset``). The
assets and the CLI ask a survey what it can do instead of testing its kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd

from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.geo.scene import SceneFiles
from landslide_pipeline.progress import Progress, no_progress
from landslide_pipeline.surveys.config import SurveyConfig


@dataclass(frozen=True)
class SurveyMetadata:
    """What the pipeline needs to know about a survey before tiling it.

    Scene fields (crs, width, height, resolution_m, bounds) are None for a tile data set, whose
    ``n_images`` counts its tiles; for a scene it counts the files mosaicked into it.
    """

    survey_id: str
    kind: str
    site: str | None
    role: str
    date: str | None
    crs: str | None
    width: int | None
    height: int | None
    bands: int
    dtype: str
    resolution_m: tuple[float, float] | None
    bounds: tuple[float, float, float, float] | None
    has_dem: bool
    dem_crs: str | None
    n_label_polygons: int | None
    labels_crs: str | None
    labels_format: str | None
    n_images: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values, e.g. for JSON or asset metadata."""
        return asdict(self)


class Survey(Protocol):
    """One survey, whatever its kind.

    Attributes:
        survey_id: The survey's id (its folder's name).
        config: Its survey.toml (defaults when it has none).
        kind: "scene" or "tiles", for metadata; code asks the members below instead.
        scene: The scene's files (None for a tile data set, which has no scene).
    """

    @property
    def survey_id(self) -> str:
        """The survey's id."""
        ...

    @property
    def config(self) -> SurveyConfig:
        """Its survey.toml."""
        ...

    @property
    def kind(self) -> str:
        """ "scene" or "tiles"."""
        ...

    @property
    def scene(self) -> SceneFiles | None:
        """The scene's files, or None."""
        ...

    @property
    def has_labels(self) -> bool:
        """Whether the survey holds landslide labels (a label file, or masks)."""
        ...

    @property
    def can_map(self) -> bool:
        """Whether a model can map it, and object-oriented labelling segment it: it has a scene."""
        ...

    def files(self) -> list[Path]:
        """Every input file, survey.toml included: what its data version hashes."""
        ...

    def label_files(self) -> list[Path]:
        """The files of its labels among ``files()``: a label edit changes only these, so what
        is made from the rest (tiles, object-oriented labels) need not be made again."""
        ...

    def inspect(self) -> SurveyMetadata:
        """Reads and validates the survey's metadata without reading pixel data."""
        ...

    def tile(self, out_dir: Path, spec: TilingSpec, progress: Progress = no_progress) -> gpd.GeoDataFrame:
        """Writes the survey's tiles into ``out_dir`` and returns its tile index, reporting
        ``progress`` (tiles done, total) as it goes."""
        ...

    def label(self, tile_index: gpd.GeoDataFrame, out_dir: Path) -> gpd.GeoDataFrame:
        """Writes a label mask per tile of ``tile_index`` into ``out_dir/masks``; returns the index
        with ``landslide_fraction``."""
        ...
