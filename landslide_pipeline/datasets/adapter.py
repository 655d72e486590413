"""Adapter configs: how a pre-cut tile data set lays out its images and masks.

One TOML file per data set (``configs/datasets/<name>.toml``), or an inline ``[adapter]`` table
in a survey's ``survey.toml``:

```toml
description = "Landslide4Sense RGB re-cut: 128x128 RGBA PNG, masks {0,255}"
nodata = 0                     # optional: image value that marks missing pixels

[image]
pattern = "images/image_*.png" # glob under the data set folder; the text matched by * pairs
                               # an image with its mask and names the tile
bands = [1, 2, 3]              # optional 1-based bands (default: every band but alpha)
hdf5_key = "img"               # HDF5 only: the dataset holding the array
axes = "HWC"                   # HDF5 only: axis order of a 3-D array, "HWC" or "CHW"

[mask]                         # optional: a data set without masks is for prediction only
pattern = "masks/mask_*.png"
band = 1                       # which band holds the mask
encoding = "0/255"             # "0/1", "0/255", "rgb" (+ color), "threshold" (+ threshold), "labelme"
color = [255, 0, 0]            # rgb: the landslide colour in bands 1-3
threshold = 127                # threshold: landslide where value > threshold (lossy JPEG masks)
labels = ["landslide"]         # labelme: shape labels that mark a landslide
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landslide_pipeline.geo.config import DEFAULT_LABEL_NAMES, Table, read_toml
from landslide_pipeline.geo.errors import SurveyInputError

#: The adapters shipped with the project, one per data set in the shared data folder.
ADAPTERS_DIR = Path(__file__).resolve().parents[2] / "configs" / "datasets"
MASK_ENCODINGS = ("0/1", "0/255", "rgb", "threshold", "labelme")
HDF5_AXES = ("HWC", "CHW")


@dataclass(frozen=True)
class ImageFiles:
    """Where a data set's images are and which of their bands to use."""

    pattern: str
    bands: tuple[int, ...] | None = None
    hdf5_key: str | None = None
    axes: str = "HWC"


@dataclass(frozen=True)
class MaskFiles:
    """Where a data set's masks are and how landslide pixels are encoded in them."""

    pattern: str
    encoding: str = "0/1"
    band: int = 1
    hdf5_key: str | None = None
    axes: str = "HWC"
    color: tuple[int, int, int] | None = None
    threshold: float | None = None
    labels: tuple[str, ...] = DEFAULT_LABEL_NAMES


@dataclass(frozen=True)
class DatasetAdapter:
    """A pre-cut tile data set's layout."""

    name: str
    image: ImageFiles
    mask: MaskFiles | None
    nodata: float | None = None
    description: str = ""


def available_adapters() -> list[str]:
    """Names of the adapters shipped in configs/datasets/."""
    return sorted(p.stem for p in ADAPTERS_DIR.glob("*.toml"))


def resolve_adapter(ref: str | dict[str, Any], config_file: Path) -> DatasetAdapter:
    """Loads an adapter given by name, by path (relative to ``config_file``) or inline.

    Raises:
        SurveyInputError: an unknown name, a missing file or an invalid adapter.
    """
    if isinstance(ref, dict):
        return parse_adapter(Table(config_file, ref, "adapter."), name=config_file.parent.name)
    if ref.endswith(".toml") or "/" in ref:
        path = (config_file.parent / ref).resolve()
    else:
        path = ADAPTERS_DIR / f"{ref}.toml"
        if not path.is_file():
            raise SurveyInputError(config_file, f"unknown adapter {ref!r}; shipped: {available_adapters()}")
    return load_adapter(path)


def load_adapter(path: Path) -> DatasetAdapter:
    """Reads an adapter TOML file."""
    if not Path(path).is_file():
        raise SurveyInputError(path, "adapter config not found")
    return parse_adapter(read_toml(Path(path)), name=Path(path).stem)


def parse_adapter(table: Table, name: str) -> DatasetAdapter:
    """Builds an adapter from its TOML table, checking every key."""
    image, mask = table.table("image"), table.table("mask")
    if image is None:
        raise SurveyInputError(table.path, "adapter needs an [image] table with a pattern")
    adapter = DatasetAdapter(name=name, image=_image_files(image), mask=_mask_files(mask) if mask else None,
                             nodata=_optional_float(table.get("nodata", (int, float))),
                             description=table.get("description", str, ""))
    table.finish()
    if adapter.mask is not None and adapter.mask.pattern.count("*") != adapter.image.pattern.count("*"):
        raise SurveyInputError(table.path, "image and mask patterns must hold the same number of '*'")
    return adapter


def _image_files(table: Table) -> ImageFiles:
    files = ImageFiles(pattern=_pattern(table), bands=table.get_list("bands", int, ()) or None,
                       hdf5_key=table.get("hdf5_key", str), axes=table.choice("axes", HDF5_AXES, "HWC"))
    table.finish()
    if files.bands and min(files.bands) < 1:
        raise SurveyInputError(table.path, f"image bands are 1-based, got {list(files.bands)}")
    return files


def _mask_files(table: Table) -> MaskFiles:
    color = table.get_list("color", int, ())
    files = MaskFiles(pattern=_pattern(table), encoding=table.choice("encoding", MASK_ENCODINGS, "0/1"),
                      band=table.get("band", int, 1), hdf5_key=table.get("hdf5_key", str),
                      axes=table.choice("axes", HDF5_AXES, "HWC"), color=tuple(color) if color else None,
                      threshold=_optional_float(table.get("threshold", (int, float))),
                      labels=table.get_list("labels", str, DEFAULT_LABEL_NAMES))
    table.finish()
    if files.encoding == "rgb" and (files.color is None or len(files.color) != 3):
        raise SurveyInputError(table.path, 'encoding = "rgb" needs color = [r, g, b]')
    if files.encoding == "threshold" and files.threshold is None:
        raise SurveyInputError(table.path, 'encoding = "threshold" needs a threshold')
    return files


def _pattern(table: Table) -> str:
    pattern = table.get("pattern", str)
    if not pattern:
        raise SurveyInputError(table.path, f"{table.where}pattern is required")
    if pattern.count("*") > 1 or "**" in pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise SurveyInputError(table.path, f"pattern {pattern!r} must be relative, inside the data set, "
                                           "with at most one '*'")
    return pattern


def _optional_float(value: int | float | None) -> float | None:
    return None if value is None else float(value)
