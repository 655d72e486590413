"""Load-time settings: what shapes the asset graph itself (partitions), read from the environment.

Everything else (tile size, epochs, learning rate, ...) is run config on the assets, editable in
the Dagster launchpad. Architectures and the fold count define the model partitions, so they must
be known when the code location loads.

Environment variables:
    LANDSLIDE_ARCHITECTURES: comma-separated registry names (default ``linknet``, the architecture
        the ``cpu`` training profile was chosen for).
    LANDSLIDE_FOLDS: number of cross-validation folds, at least 2 (default 5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from landslide_pipeline.nn import available_architectures

#: The environment variables read here: name -> (default, meaning).
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "LANDSLIDE_ARCHITECTURES": ("linknet", "comma-separated architectures, one model partition each: "
                                           "unet, resunet, fcn, linknet (linknet: the cpu profile's choice)"),
    "LANDSLIDE_FOLDS": ("5", "k of the k-fold cross-validation (at least 2)"),
}


@dataclass(frozen=True)
class PipelineSettings:
    """Settings that define the asset graph's partitions."""

    architectures: tuple[str, ...] = ("linknet",)
    n_folds: int = 5

    def __post_init__(self) -> None:
        unknown = sorted(set(self.architectures) - set(available_architectures()))
        if unknown or not self.architectures:
            raise ValueError(
                f"unknown architectures {unknown}; choose from {available_architectures()}"
            )
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")

    @classmethod
    def from_env(cls) -> PipelineSettings:
        """Reads LANDSLIDE_ARCHITECTURES and LANDSLIDE_FOLDS, falling back to the defaults."""
        names = os.environ.get("LANDSLIDE_ARCHITECTURES", ENVIRONMENT["LANDSLIDE_ARCHITECTURES"][0])
        folds = os.environ.get("LANDSLIDE_FOLDS", ENVIRONMENT["LANDSLIDE_FOLDS"][0])
        try:
            n_folds = int(folds)
        except ValueError as err:
            raise ValueError(f"LANDSLIDE_FOLDS must be an integer, got {folds!r}") from err
        return cls(
            architectures=tuple(n.strip() for n in names.split(",") if n.strip()),
            n_folds=n_folds,
        )
