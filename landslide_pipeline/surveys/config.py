"""The optional per-survey config file, ``survey.toml``.

Without a ``survey.toml`` a survey folder is read by convention: ``image.tif``, an optional
``dem.tif`` and optional labels ``landslides.gpkg`` (or ``.geojson``, ``.shp``, Labelme ``.json``).
Every key of the file is optional; unknown keys, wrong types and wrong values are refused (naming
the file and the key, see ``config_files``) so that a typo cannot pass unseen.

```toml
kind = "scene"                 # "scene" (default): one georeferenced image; "tiles": a pre-cut data set
site = "atsuma-east"           # surveys of one place over time share a site (for change detection)
date = 2025-06-01              # when the survey was flown (TOML date): orders a site's surveys for change detection
role = "train"                 # "train" (default): its labelled tiles are dealt into the folds (and a
                               # share held out as test); "test": all its tiles form the held-out test split;
                               # "map": a survey to map only (monitoring): never in a training set
source = "../../../../shared/data/coseismic_scene"  # folder the paths below are relative to
                               # (itself relative to this file; default: this folder)
# kind = "scene"
image = "*.tif"                # a file, a glob or a list; several files are mosaicked into one scene
dem = "dem.tif"                # optional DEM in any CRS and resolution
nodata = 0                     # overrides the image's nodata value (one its dtype can hold)
bands = [1, 2, 3]              # 1-based image bands to keep (default: all but an alpha band)
terrain_bands = ["slope", "hillshade"]  # besides elevation and slope: "hillshade", "relief"
relief_radius_m = 10.0

[labels]
path = "landslides.gpkg"
format = "auto"                # auto | gpkg | geojson | shapefile | labelme
layer = "landslides"           # a GeoPackage layer (default: the first)
names = ["landslide"]          # Labelme shape labels that mark a landslide

# kind = "tiles"
adapter = "l4s_rgb"            # configs/datasets/<name>.toml, a path to one, or an inline [adapter] table
```
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import Field, StrictFloat, StrictStr, field_validator, model_validator

from landslide_pipeline.config_files import BandNumbers, Names, TomlTable, load
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.labelme import DEFAULT_LABEL_NAMES
from landslide_pipeline.geo.terrain import BASE_TERRAIN_BANDS, OPTIONAL_TERRAIN_BANDS
from landslide_pipeline.layout import RAW_IMAGE, SURVEY_CONFIG
from landslide_pipeline.settings import allowed_data_roots

Kind = Literal["scene", "tiles"]
Role = Literal["train", "test", "map"]
LabelFormat = Literal["auto", "gpkg", "geojson", "shapefile", "labelme"]


class LabelsConfig(TomlTable):
    """The ``[labels]`` table: where a scene's landslide labels are and how to read them.

    Attributes:
        path: The label file, relative to the source folder.
        format: One of ``LabelFormat``; "auto" tells by the extension.
        layer: The GeoPackage layer, or None for the first.
        names: Labelme shape labels that mark a landslide.
    """

    path: StrictStr
    format: LabelFormat = "auto"
    layer: StrictStr | None = None
    names: Names = DEFAULT_LABEL_NAMES


@dataclass(frozen=True)
class SurveyConfig:
    """A survey's ``survey.toml`` (or the defaults when there is none).

    Attributes:
        kind: "scene" or "tiles".
        site: The place the survey shows, shared by surveys of one site over time.
        role: "train" (tiles go to the folds), "test" (every tile is held out for testing) or
            "map" (mapped only: its labels, if any, never enter a training set).
        date: ISO date of acquisition; a site's surveys are compared in date order.
        source: Absolute folder that image, dem, labels (scene) or the data set (tiles) are in.
        config_file: The survey.toml read, or None.
        image: File names or globs of the scene image; several files make a mosaic.
        dem: File name of the DEM, or None to look for dem.tif.
        nodata: Overrides the image's nodata value.
        bands: 1-based image bands to keep; None keeps every band but alpha.
        terrain_bands: Terrain bands to write (elevation and slope first, always).
        relief_radius_m: Neighbourhood radius of the relief band.
        labels: The labels, or None to look for landslides.gpkg / .geojson / .shp / .json.
        adapter: Name, path or inline table of a tile data set adapter (kind "tiles").
    """

    kind: str = "scene"
    site: str | None = None
    role: str = "train"
    date: str | None = None
    source: Path = Path(".")
    config_file: Path | None = None
    image: tuple[str, ...] = (RAW_IMAGE,)
    dem: str | None = None
    nodata: float | None = None
    bands: tuple[int, ...] | None = None
    terrain_bands: tuple[str, ...] = BASE_TERRAIN_BANDS
    relief_radius_m: float = 10.0
    labels: LabelsConfig | None = None
    adapter: str | dict[str, Any] | None = field(default=None, hash=False)


class _SurveyFile(TomlTable):
    """The top-level table of ``survey.toml``; ``SurveyConfig`` describes the keys."""

    kind: Kind = "scene"
    site: StrictStr | None = None
    role: Role = "train"
    date: StrictStr | None = None
    source: StrictStr = "."
    image: Names = (RAW_IMAGE,)
    dem: StrictStr | None = None
    nodata: StrictFloat | None = None
    bands: BandNumbers | None = None
    terrain_bands: Names = BASE_TERRAIN_BANDS
    relief_radius_m: Annotated[StrictFloat, Field(gt=0)] = 10.0
    labels: LabelsConfig | None = None
    adapter: StrictStr | dict[str, Any] | None = None

    @field_validator("date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> str:
        """A TOML date or date-time, or an ISO date string, as ``YYYY-MM-DD``."""
        if isinstance(value, datetime.datetime):
            return value.date().isoformat()
        if isinstance(value, datetime.date):
            return value.isoformat()
        try:
            return datetime.date.fromisoformat(value).isoformat()
        except (TypeError, ValueError) as err:
            raise ValueError(f"must be an ISO date like 2025-06-01, got {value!r}") from err

    @field_validator("terrain_bands")
    @classmethod
    def _terrain_bands(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        """Elevation and slope, then the optional bands named, in their canonical order."""
        allowed = BASE_TERRAIN_BANDS + OPTIONAL_TERRAIN_BANDS
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise ValueError(f"unknown terrain band(s) {unknown}; choose from {allowed}")
        return BASE_TERRAIN_BANDS + tuple(name for name in OPTIONAL_TERRAIN_BANDS if name in names)

    @field_validator("adapter", mode="before")
    @classmethod
    def _adapter_reference(cls, value: Any) -> Any:
        if not isinstance(value, str | dict):
            raise ValueError(f"must be an adapter name, a path to one or a table, got {value!r}")
        return value

    @model_validator(mode="after")
    def _tiles_take_an_adapter(self) -> Self:
        if self.kind == "tiles" and self.adapter is None:
            raise ValueError('kind = "tiles" needs an adapter (a name in configs/datasets/ or a table)')
        if self.kind == "tiles" and self.labels is not None:
            raise ValueError('kind = "tiles" takes its masks from the adapter; remove [labels]')
        return self


def load_survey_config(survey_dir: Path) -> SurveyConfig:
    """Reads ``survey_dir/survey.toml``, or returns the conventional defaults when it is absent.

    Raises:
        SurveyInputError: invalid TOML, an unknown key, a wrong type or value, or a ``source``
            folder that does not exist.
    """
    survey_dir = Path(survey_dir).resolve()
    path = survey_dir / SURVEY_CONFIG
    if not path.is_file():
        return SurveyConfig(source=survey_dir)
    file = load(_SurveyFile, path)
    keys = {key: value for key, value in file if key != "source"}
    return SurveyConfig(**keys, source=_source_folder(path, file.source), config_file=path)


def check_nodata(config: SurveyConfig, dtype: str) -> None:
    """Refuses a ``nodata`` override that no pixel of the image's ``dtype`` can hold.

    A NaN on integer imagery, a value outside the dtype's range or a fraction on integer imagery
    would mark no pixel at all, and GDAL refuses to write such a value into the tiles.

    Raises:
        SurveyInputError: naming survey.toml and the key.
    """
    if config.nodata is None:
        return
    problem = _nodata_problem(config.nodata, np.dtype(dtype))
    if problem:
        raise SurveyInputError(config.config_file or config.source / SURVEY_CONFIG, f"nodata: {problem}")


def _nodata_problem(value: float, dtype: np.dtype) -> str | None:
    if np.issubdtype(dtype, np.floating):
        fits = not math.isfinite(value) or abs(value) <= float(np.finfo(dtype).max)
        return None if fits else f"{value:g} is outside the {dtype} range"
    low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    if math.isnan(value):
        return (f"NaN cannot mark nodata in {dtype} imagery (integer pixels are never NaN); give a whole number "
                f"in {low}..{high}, or remove the key")
    if not low <= value <= high:
        return f"{value:g} is outside the {dtype} range {low}..{high}: no pixel can hold it"
    if value != int(value):
        return f"{value:g} is no whole number: no {dtype} pixel can hold it"
    return None


def _source_folder(config_file: Path, source: str) -> Path:
    folder = (config_file.parent / Path(source).expanduser()).resolve()
    if not folder.is_dir():
        raise SurveyInputError(config_file, f"source: folder {folder} does not exist")
    return confined(folder, config_file, "source: folder ")


def confined(path: Path, config_file: Path | None, what: str = "") -> Path:
    """``path``, if it lies inside the allowed data roots (LANDSLIDE_DATA_ROOTS) when those are set.

    Raises:
        SurveyInputError: naming ``config_file`` (the file that pointed outside), else ``path``.
    """
    roots = allowed_data_roots()
    if roots is not None and not any(path.resolve().is_relative_to(root) for root in roots):
        raise SurveyInputError(config_file or path, f"{what}{path} lies outside the allowed data roots "
                                                    f"{', '.join(map(str, roots))} (LANDSLIDE_DATA_ROOTS)")
    return path
