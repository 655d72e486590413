"""The optional per-survey config file, ``survey.toml``, and strict reading of TOML tables.

Without a ``survey.toml`` a survey folder is read by convention: ``image.tif``, an optional
``dem.tif`` and optional labels ``landslides.gpkg`` (or ``.geojson``, ``.shp``, Labelme ``.json``).
Every key of the file is optional; unknown keys are refused so that a typo cannot pass unseen.

```toml
kind = "scene"                 # "scene" (default): one georeferenced image; "tiles": a pre-cut data set
site = "atsuma-east"           # surveys of one place over time share a site (for change detection)
date = 2025-06-01              # when the survey was flown (TOML date): orders a site's surveys for change detection
role = "train"                 # "train" (default): its labelled tiles are dealt into the folds (and a
                               # share held out as test); "test": all its tiles form the held-out test split
source = "../../../../shared/data/coseismic_scene"  # folder the paths below are relative to
                               # (itself relative to this file; default: this folder)
# kind = "scene"
image = "*.tif"                # a file, a glob or a list; several files are mosaicked into one scene
dem = "dem.tif"                # optional DEM in any CRS and resolution
nodata = 0                     # overrides the image's nodata value
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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.terrain import BASE_TERRAIN_BANDS, OPTIONAL_TERRAIN_BANDS

CONFIG_NAME = "survey.toml"
KINDS = ("scene", "tiles")
ROLES = ("train", "test")
LABEL_FORMATS = ("auto", "gpkg", "geojson", "shapefile", "labelme")
DEFAULT_IMAGE = "image.tif"
DEFAULT_DEM = "dem.tif"
DEFAULT_LABELS = ("landslides.gpkg", "landslides.geojson", "landslides.shp", "landslides.json")
DEFAULT_LABEL_NAMES = ("landslide",)


class Table:
    """A TOML table read key by key: wrong types and unknown keys name the file and the key."""

    def __init__(self, path: Path, data: dict[str, Any], where: str = "") -> None:
        self.path, self.where, self._data, self._used = path, where, data, set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        """The value of ``key``, checked to be of ``kind``, or ``default`` when absent."""
        self._used.add(key)
        if key not in self._data:
            return default
        value = self._data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise SurveyInputError(self.path, f"{self.where}{key} must be {names}, got {value!r}")
        return value

    def get_list(self, key: str, kind: type, default: tuple = ()) -> tuple:
        """A list of ``kind`` values (a single value counts as a list of one)."""
        value = self.get(key, (list, kind), None)
        if value is None:
            return default
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
            raise SurveyInputError(self.path, f"{self.where}{key} must list {kind.__name__} values, got {value!r}")
        return tuple(values)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise SurveyInputError(self.path, f"{self.where}{key} must be one of {choices}, got {value!r}")
        return value

    def table(self, key: str) -> Table | None:
        value = self.get(key, dict)
        return None if value is None else Table(self.path, value, f"{self.where}{key}.")

    def finish(self) -> None:
        """Refuses keys that nothing read."""
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            raise SurveyInputError(self.path, f"unknown key(s) {', '.join(self.where + k for k in unknown)}")


def read_toml(path: Path) -> Table:
    """Parses a TOML file into a Table; syntax errors name the file and the line."""
    try:
        with open(path, "rb") as handle:
            return Table(path, tomllib.load(handle))
    except tomllib.TOMLDecodeError as err:
        raise SurveyInputError(path, f"invalid TOML ({err})") from err


@dataclass(frozen=True)
class LabelsConfig:
    """Where a scene's landslide labels are and how to read them (paths relative to the source)."""

    path: str
    format: str = "auto"
    layer: str | None = None
    names: tuple[str, ...] = DEFAULT_LABEL_NAMES


@dataclass(frozen=True)
class SurveyConfig:
    """A survey's ``survey.toml`` (or the defaults when there is none).

    Attributes:
        kind: "scene" or "tiles".
        site: The place the survey shows, shared by surveys of one site over time.
        role: "train" (tiles go to the folds) or "test" (every tile is held out for testing).
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
    image: tuple[str, ...] = (DEFAULT_IMAGE,)
    dem: str | None = None
    nodata: float | None = None
    bands: tuple[int, ...] | None = None
    terrain_bands: tuple[str, ...] = BASE_TERRAIN_BANDS
    relief_radius_m: float = 10.0
    labels: LabelsConfig | None = None
    adapter: str | dict[str, Any] | None = field(default=None, hash=False)


def load_survey_config(survey_dir: Path) -> SurveyConfig:
    """Reads ``survey_dir/survey.toml``, or returns the conventional defaults when it is absent.

    Raises:
        SurveyInputError: invalid TOML, an unknown key, a wrong type or value, or a ``source``
            folder that does not exist.
    """
    survey_dir = Path(survey_dir).resolve()
    path = survey_dir / CONFIG_NAME
    if not path.is_file():
        return SurveyConfig(source=survey_dir)
    table = read_toml(path)
    kind = table.choice("kind", KINDS, "scene")
    source = _source_folder(path, table.get("source", str, "."))
    config = SurveyConfig(
        kind=kind, site=table.get("site", str), role=table.choice("role", ROLES, "train"), date=_date(table), source=source, config_file=path,
        image=table.get_list("image", str, (DEFAULT_IMAGE,)), dem=table.get("dem", str),
        nodata=_number(table, "nodata"), bands=_bands(table), terrain_bands=_terrain_bands(table),
        relief_radius_m=float(table.get("relief_radius_m", (int, float), 10.0)),
        labels=_labels(table.table("labels")), adapter=table.get("adapter", (str, dict)),
    )
    table.finish()
    if kind == "tiles" and config.adapter is None:
        raise SurveyInputError(path, 'kind = "tiles" needs an adapter (a name in configs/datasets/ or a table)')
    if kind == "tiles" and config.labels is not None:
        raise SurveyInputError(path, 'kind = "tiles" takes its masks from the adapter; remove [labels]')
    if config.relief_radius_m <= 0:
        raise SurveyInputError(path, f"relief_radius_m must be positive, got {config.relief_radius_m}")
    return config


def _source_folder(config_file: Path, source: str) -> Path:
    folder = (config_file.parent / Path(source).expanduser()).resolve()
    if not folder.is_dir():
        raise SurveyInputError(config_file, f"source folder {folder} does not exist")
    return folder


def _date(table: Table) -> str | None:
    value = table.get("date", (datetime.date, str))
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = datetime.date.fromisoformat(value)
        except ValueError as err:
            raise SurveyInputError(table.path, f"date must be an ISO date like 2025-06-01, got {value!r}") from err
    return None if value is None else value.isoformat()


def _number(table: Table, key: str) -> float | None:
    value = table.get(key, (int, float))
    return None if value is None else float(value)


def _bands(table: Table) -> tuple[int, ...] | None:
    bands = table.get_list("bands", int, ())
    if bands and min(bands) < 1:
        raise SurveyInputError(table.path, f"bands are 1-based, got {list(bands)}")
    return bands or None


def _terrain_bands(table: Table) -> tuple[str, ...]:
    names = table.get_list("terrain_bands", str, ())
    allowed = BASE_TERRAIN_BANDS + OPTIONAL_TERRAIN_BANDS
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SurveyInputError(table.path, f"unknown terrain band(s) {unknown}; choose from {allowed}")
    return BASE_TERRAIN_BANDS + tuple(n for n in OPTIONAL_TERRAIN_BANDS if n in names)


def _labels(table: Table | None) -> LabelsConfig | None:
    if table is None:
        return None
    path = table.get("path", str)
    if path is None:
        raise SurveyInputError(table.path, "[labels] needs a path")
    labels = LabelsConfig(path=path, format=table.choice("format", LABEL_FORMATS, "auto"),
                          layer=table.get("layer", str),
                          names=table.get_list("names", str, DEFAULT_LABEL_NAMES))
    table.finish()
    return labels
