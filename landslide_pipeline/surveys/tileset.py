"""A pre-cut tile data set as a survey (kind "tiles"): image/mask pairs read through an adapter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import geopandas as gpd

from landslide_pipeline.datasets.adapter import DatasetAdapter, resolve_adapter
from landslide_pipeline.datasets.precut import find_pairs, inspect_dataset, label_dataset, tile_dataset
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.grid import TilingSpec
from landslide_pipeline.progress import Progress, no_progress
from landslide_pipeline.surveys.base import SurveyMetadata
from landslide_pipeline.surveys.config import SurveyConfig


@dataclass(frozen=True)
class TileSetSurvey:
    """A survey whose imagery comes cut into tiles: no scene to map, labels as masks.

    Attributes:
        survey_id: The survey's id.
        config: Its survey.toml, whose ``source`` is the data set folder.
        adapter: How the data set lays out its images and masks.
    """

    survey_id: str
    config: SurveyConfig
    adapter: DatasetAdapter
    kind: ClassVar[str] = "tiles"
    scene: ClassVar[None] = None

    @classmethod
    def from_config(cls, survey_id: str, config: SurveyConfig) -> TileSetSurvey:
        """Resolves the config's adapter (a shipped name, a file, or an inline table)."""
        # Only a survey.toml can say kind = "tiles", and its parser requires the adapter then.
        assert config.adapter is not None and config.config_file is not None
        return cls(survey_id, config, resolve_adapter(config.adapter, config.config_file))

    @property
    def has_labels(self) -> bool:
        """Whether the adapter names masks."""
        return self.adapter.mask is not None

    @property
    def can_map(self) -> bool:
        """Never: a tile data set has no scene to map."""
        return False

    def files(self) -> list[Path]:
        """survey.toml and every image and mask of the data set."""
        files = [self.config.config_file] if self.config.config_file is not None else []
        for pair in find_pairs(self.config.source, self.adapter):
            files += [pair.image] + ([pair.mask] if pair.mask is not None else [])
        return files

    def label_files(self) -> list[Path]:
        """Every mask of the data set."""
        return [pair.mask for pair in find_pairs(self.config.source, self.adapter) if pair.mask is not None]

    def inspect(self) -> SurveyMetadata:
        """Checks every tile's header (``datasets.precut.inspect_dataset``)."""
        summary = inspect_dataset(self.config.source, self.adapter)
        config = self.config
        return SurveyMetadata(
            survey_id=self.survey_id, kind=self.kind, site=config.site, role=config.role, date=config.date,
            crs=None, width=None, height=None, bands=summary.bands, dtype=summary.dtype, resolution_m=None,
            bounds=None, has_dem=False, dem_crs=None, n_label_polygons=None, labels_crs=None,
            labels_format="mask" if summary.labelled else None, n_images=summary.n_tiles)

    def tile(self, out_dir: Path, spec: TilingSpec, progress: Progress = no_progress) -> gpd.GeoDataFrame:
        """Copies the data set tile by tile, re-cut on the snapping grid where its tiles are not
        ``tile_size`` square."""
        index = tile_dataset(self.survey_id, self.config.source, self.adapter, out_dir, spec)
        progress(len(index), len(index))  # a copy, as fast as the disk: one report at the end
        return index

    def label(self, tile_index: gpd.GeoDataFrame, out_dir: Path) -> gpd.GeoDataFrame:
        """Decodes the masks and cuts them like the images.

        Raises:
            SurveyInputError: the data set has no masks, or they cannot be read.
        """
        if not self.has_labels:
            raise SurveyInputError(self.config.source, "the survey has no labels")
        return label_dataset(tile_index, self.config.source, self.adapter, out_dir)
