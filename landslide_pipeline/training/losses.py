"""Segmentation losses for a rare foreground class (landslides are a few percent of pixels).

- ``ce``: plain cross-entropy, as in study B.
- ``weighted_ce``: cross-entropy with class weights 1 / sqrt(pixel frequency), normalised to
  mean 1: strong enough that background-everywhere stops being a good solution, mild enough
  not to flood the map with false positives.
- ``dice``: 1 - soft Dice of the landslide class over the whole batch.
- ``focal``: focal loss (Lin et al. 2017), gamma 2: down-weights pixels already classified well.
- ``ce_dice``: cross-entropy + Dice, the usual pairing (and the peer library's in
  ``../shared/anchors.md``): Dice pulls precision and recall towards the F1 optimum, cross-entropy
  keeps per-pixel gradients well conditioned early on.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LossName = Literal["ce", "weighted_ce", "dice", "focal", "ce_dice"]
LOSSES: tuple[str, ...] = get_args(LossName)


def class_weights(counts: np.ndarray) -> torch.Tensor:
    """Inverse square-root class frequencies, normalised to mean 1.

    Args:
        counts: Label pixels of each class (background, landslide).
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1.0) / counts.sum())
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


class DiceLoss(nn.Module):
    """1 - soft Dice of the foreground (class 1) probability, summed over the batch."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probability = logits.softmax(dim=1)[:, 1]
        truth = (target == 1).to(probability.dtype)
        overlap = (probability * truth).sum()
        return 1 - (2 * overlap + self.smooth) / (probability.sum() + truth.sum() + self.smooth)


class FocalLoss(nn.Module):
    """Mean focal loss: cross-entropy scaled by (1 - p_true) ** gamma."""

    weight: torch.Tensor | None  # a buffer: per-class weights, registered in __init__

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is not None:
            loss = loss * self.weight[target]
        return loss.mean()


class CrossEntropyDiceLoss(nn.Module):
    """Cross-entropy plus the landslide class's soft Dice loss, equally weighted."""

    def __init__(self) -> None:
        super().__init__()
        self.ce, self.dice = nn.CrossEntropyLoss(), DiceLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce(logits, target) + self.dice(logits, target)


def make_loss(name: str, class_counts: np.ndarray | None = None) -> nn.Module:
    """Builds the named loss; ``class_counts`` (label pixels per class) set the class weights
    where used."""
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "weighted_ce":
        if class_counts is None:
            raise ValueError("weighted_ce needs the label pixels per class")
        return nn.CrossEntropyLoss(weight=class_weights(class_counts))
    if name == "dice":
        return DiceLoss()
    if name == "focal":
        return FocalLoss()
    if name == "ce_dice":
        return CrossEntropyDiceLoss()
    raise ValueError(f"unknown loss {name!r}; choose from {LOSSES}")
