"""What a user calls *a model*: per-band normalisation, one or more networks, optional flip TTA.

A :class:`Segmenter` takes network input bands as ``training.features.tile_features`` builds
them (image bands scaled by their dtype's range, then terrain bands) and returns class
probabilities. Each member network carries the per-band statistics it was trained with
(:class:`BandNormalization`), so fold models normalised on different training folds can be
averaged into one ensemble. The same module is what training scores, what mapping slides over a
scene, and what MLflow stores (``torch.export``), so the three cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Index of the landslide class in the networks' outputs (training masks are {0, 1}).
LANDSLIDE_CLASS = 1


class BandNormalization(nn.Module):
    """``(x - mean) / std`` per band; missing values (NaN: nodata) become 0, the band mean.

    Args:
        mean: Mean of each input band over the training tiles' valid pixels.
        std: Standard deviation of each band (must be > 0).
    """

    # Buffers registered in __init__, shape (1, bands, 1, 1).
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or not len(mean):
            raise ValueError(f"mean and std need one value per band, got {len(mean)} and {len(std)}")
        if min(std) <= 0:
            raise ValueError(f"band standard deviations must be positive, got {list(std)}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def bands(self) -> int:
        return self.mean.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num((x - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0)


class NormalizedNetwork(nn.Sequential):
    """A segmentation network behind the normalisation it was trained with; returns logits."""

    def __init__(self, normalization: BandNormalization, network: nn.Module) -> None:
        super().__init__(normalization, network)

    @property
    def normalization(self) -> BandNormalization:
        """The band normalisation the network was trained with."""
        normalization = self[0]
        assert isinstance(normalization, BandNormalization)  # the first of the two modules __init__ takes
        return normalization

    @property
    def network(self) -> nn.Module:
        return self[1]


class Segmenter(nn.Module):
    """Class probabilities ``(N, classes, H, W)``: the mean softmax of every member, and with
    ``flips`` of every member on the input, flipped left-right and upside down (flipped back).

    Args:
        members: Networks behind their normalisation (one for a fold model, k for a fold ensemble).
        flips: Test-time augmentation: also predict on the two mirror images (3x the cost).
    """

    def __init__(self, members: Sequence[NormalizedNetwork], flips: bool = False) -> None:
        super().__init__()
        if not members:
            raise ValueError("a segmenter needs at least one member network")
        self.members = nn.ModuleList(members)
        self.flips = flips

    @property
    def networks(self) -> list[NormalizedNetwork]:
        """The member networks, typed (``members`` is the ``nn.ModuleList`` that holds them)."""
        networks: list[NormalizedNetwork] = []
        for member in self.members:
            assert isinstance(member, NormalizedNetwork)  # the only member type __init__ takes
            networks.append(member)
        return networks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = [(x, ())] + ([(x.flip(-1), (-1,)), (x.flip(-2), (-2,))] if self.flips else [])
        total: torch.Tensor | None = None
        for member in self.members:
            for view, axes in views:
                probability = member(view).float().softmax(dim=1)
                probability = probability.flip(axes) if axes else probability
                total = probability if total is None else total + probability
        assert total is not None  # __init__ rejects an empty members list, and views is never empty
        return total / (len(self.members) * len(views))
