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

Unknown keys, wrong types and wrong values are refused, naming the file and the key
(``[mask].encoding``; ``[adapter.mask].encoding`` in an inline table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import AfterValidator, StrictFloat, StrictInt, StrictStr, model_validator

from landslide_pipeline.config_files import BandNumbers, Location, Names, TomlTable, read_toml, validate
from landslide_pipeline.geo.errors import SurveyInputError
from landslide_pipeline.geo.labelme import DEFAULT_LABEL_NAMES

#: The adapters shipped with the project, one per data set in the shared data folder.
ADAPTERS_DIR = Path(__file__).resolve().parents[2] / "configs" / "datasets"
MaskEncoding = Literal["0/1", "0/255", "rgb", "threshold", "labelme"]
Hdf5Axes = Literal["HWC", "CHW"]
MASK_ENCODINGS: tuple[str, ...] = get_args(MaskEncoding)
HDF5_AXES: tuple[str, ...] = get_args(Hdf5Axes)


def _inside_data_set(pattern: str) -> str:
    if not pattern:
        raise ValueError("must not be empty")
    if pattern.count("*") > 1 or "**" in pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise ValueError(f"{pattern!r} must be relative, inside the data set, with at most one '*'")
    return pattern


#: A glob relative to the data set folder with at most one ``*``.
Pattern = Annotated[StrictStr, AfterValidator(_inside_data_set)]


class ImageFiles(TomlTable):
    """The ``[image]`` table: where a data set's images are and which of their bands to use."""

    pattern: Pattern
    bands: BandNumbers | None = None
    hdf5_key: StrictStr | None = None
    axes: Hdf5Axes = "HWC"


class MaskFiles(TomlTable):
    """The ``[mask]`` table: where a data set's masks are and how landslide pixels are encoded."""

    pattern: Pattern
    encoding: MaskEncoding = "0/1"
    band: StrictInt = 1
    hdf5_key: StrictStr | None = None
    axes: Hdf5Axes = "HWC"
    color: tuple[StrictInt, StrictInt, StrictInt] | None = None
    threshold: StrictFloat | None = None
    labels: Names = DEFAULT_LABEL_NAMES

    @model_validator(mode="after")
    def _encoding_settings(self) -> Self:
        if self.encoding == "rgb" and self.color is None:
            raise ValueError('encoding = "rgb" needs color = [r, g, b]')
        if self.encoding == "threshold" and self.threshold is None:
            raise ValueError('encoding = "threshold" needs a threshold')
        return self


class _AdapterFile(TomlTable):
    """An adapter's top-level table; ``DatasetAdapter`` describes the keys."""

    description: StrictStr = ""
    nodata: StrictFloat | None = None
    image: ImageFiles
    mask: MaskFiles | None = None

    @model_validator(mode="after")
    def _patterns_pair(self) -> Self:
        if self.mask is not None and self.mask.pattern.count("*") != self.image.pattern.count("*"):
            raise ValueError("image and mask patterns must hold the same number of '*'")
        return self


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
        return parse_adapter(ref, config_file.parent.name, config_file, where=("adapter",))
    if ref.endswith(".toml") or "/" in ref:
        path = (config_file.parent / ref).resolve()
    else:
        path = ADAPTERS_DIR / f"{ref}.toml"
        if not path.is_file():
            raise SurveyInputError(config_file, f"unknown adapter {ref!r}; shipped: {available_adapters()}")
    return load_adapter(path)


def load_adapter(path: Path) -> DatasetAdapter:
    """Reads an adapter TOML file."""
    path = Path(path)
    if not path.is_file():
        raise SurveyInputError(path, "adapter config not found")
    return parse_adapter(read_toml(path), path.stem, path)


def parse_adapter(data: Mapping[str, Any], name: str, path: Path, where: Location = ()) -> DatasetAdapter:
    """Builds an adapter from its TOML table, found at ``where`` in the file ``path``.

    Raises:
        SurveyInputError: an unknown key or a wrong type or value, naming ``path`` and the key.
    """
    return DatasetAdapter(name=name, **dict(validate(_AdapterFile, data, path, where)))
