"""Input sets: which bands a model takes, named, and the model variants they make.

Study A compares RGB against RGB + DEM (Table 7); a survey without a DEM can only be mapped by a
model that takes the image alone. A training set holds every band its surveys give (the image
bands, then each terrain band their DEMs give, ``training.features.TERRAIN_ORDER``), and each
model picks its *input set* from them:

======== ======================================= ===================================
name     bands                                   needs
======== ======================================= ===================================
rgb      the image bands                         the image
rgb-dem  + elevation (centred per tile, / 100 m) a DEM
rgb-slope + slope (/ 90 degrees)                 a DEM (the default: study A's best)
rgb-terrain + elevation, slope, hillshade, relief a DEM, survey.toml terrain_bands
======== ======================================= ===================================

("rgb" names the image bands whatever their number: a 4-band image gives 4.)

A *model variant* is an architecture with an input set. Its key is the architecture's name for
the default input set (``linknet``) and ``<architecture>@<input set>`` otherwise
(``linknet@rgb``): the keys are the model partitions, the model folders and the
``architecture`` column of the evaluation table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from landslide_pipeline.training.features import TERRAIN_BANDS

#: Input set name -> the terrain bands it adds to the image bands.
INPUT_SETS: dict[str, tuple[str, ...]] = {
    "rgb": (),
    "rgb-dem": ("elevation",),
    "rgb-slope": ("slope",),
    "rgb-terrain": ("elevation", "slope", "hillshade", "relief"),
}
DEFAULT_INPUTS = "rgb-slope"
_SEPARATOR = "@"


def check_input_set(name: str) -> str:
    """``name`` if it names an input set, else ValueError."""
    if name not in INPUT_SETS:
        raise ValueError(f"unknown input set {name!r}; choose from {', '.join(INPUT_SETS)}")
    return name


def input_bands(inputs: str, available: Sequence[str]) -> list[str]:
    """The bands of input set ``inputs`` among a training set's ``available`` bands: its image
    bands, then the set's terrain bands.

    Raises:
        ValueError: the training set lacks a terrain band of the set (naming what to change).
    """
    image = [b for b in available if b not in TERRAIN_BANDS]
    missing = [b for b in INPUT_SETS[check_input_set(inputs)] if b not in available]
    if missing:
        hint = ("add them to survey.toml terrain_bands and tile again" if set(missing) <= {"hillshade", "relief"}
                else "build training_set with use_terrain=true from surveys with a DEM")
        raise ValueError(f"input set {inputs} needs band(s) {', '.join(missing)} that the training set lacks "
                         f"(it has {', '.join(available)}): {hint}")
    return image + list(INPUT_SETS[inputs])


def input_set_of(bands: Sequence[str]) -> str:
    """The name of the input set whose terrain bands ``bands`` holds (``custom`` for none)."""
    terrain = tuple(b for b in bands if b in TERRAIN_BANDS)
    return next((name for name, extra in INPUT_SETS.items() if extra == terrain), "custom")


def needs_dem(bands: Sequence[str]) -> bool:
    """Whether a model taking ``bands`` needs the survey's DEM."""
    return any(b in TERRAIN_BANDS for b in bands)


@dataclass(frozen=True)
class ModelVariant:
    """An architecture with an input set."""

    architecture: str
    inputs: str = DEFAULT_INPUTS

    @property
    def key(self) -> str:
        """``linknet`` for the default input set, ``linknet@rgb`` otherwise."""
        return self.architecture if self.inputs == DEFAULT_INPUTS else f"{self.architecture}{_SEPARATOR}{self.inputs}"

    @classmethod
    def parse(cls, key: str) -> ModelVariant:
        """The variant of a key (``linknet``, ``linknet@rgb``).

        Raises:
            ValueError: an unknown input set.
        """
        architecture, _, inputs = key.partition(_SEPARATOR)
        return cls(architecture, check_input_set(inputs or DEFAULT_INPUTS))


def variant_keys(architectures: Sequence[str], input_sets: Sequence[str]) -> list[str]:
    """Every architecture with every input set, architecture by architecture."""
    return [ModelVariant(a, check_input_set(i)).key for a in architectures for i in input_sets]
