"""The one training loop every architecture goes through."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from landslide_pipeline.metrics import ConfusionCounts, confusion_counts, segmentation_metrics

LossName = Literal["ce", "weighted_ce"]


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser and schedule: Adam with step decay (lr x gamma every step_size epochs).

    ``weighted_ce`` weights each class by the inverse square root of its pixel frequency in the
    training samples: landslides are a few percent of the pixels, and unweighted cross-entropy
    then learns to predict background everywhere; the square root keeps the weight moderate.
    """

    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    step_size: int = 30
    gamma: float = 0.1
    loss: LossName = "weighted_ce"
    seed: int = 0


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    train_loss: float
    val_loss: float
    val_precision: float
    val_recall: float
    val_f1: float
    learning_rate: float
    images_per_second: float
    seconds: float


@dataclass
class TrainingResult:
    best_epoch: int
    best_val_f1: float
    seconds: float
    history: list[EpochReport] = field(default_factory=list)


def pick_device() -> torch.device:
    """CUDA when present, else the CPU; chosen at run time so the same code runs on both."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def class_weights(y: np.ndarray, num_classes: int = 2) -> torch.Tensor:
    counts = np.bincount(y.ravel(), minlength=num_classes).astype(np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1.0) / counts.sum())
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[np.ndarray]:
    order = torch.randperm(n, generator=generator).numpy() if generator is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(x).to(device, memory_format=torch.channels_last)


def train_segmentation(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainingConfig,
    device: torch.device | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainingResult:
    """Trains ``model`` in place and leaves it holding the weights of its best validation-F1 epoch.

    Args:
        model: Any registry architecture (logits of shape N x classes x H x W).
        train: (x, y) arrays: float32 (N, C, H, W) and uint8 (N, H, W).
        val: Validation arrays of the same form.
        config: Optimiser, schedule, loss and seed.
        device: Where to train; ``pick_device()`` when None.
        on_epoch: Called with each epoch's report (progress logging).
    """
    torch.manual_seed(config.seed)
    device = device or pick_device()
    model.to(device, memory_format=torch.channels_last)
    weights = class_weights(train[1]) if config.loss == "weighted_ce" else None
    criterion = nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=config.step_size, gamma=config.gamma)
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainingResult(best_epoch=0, best_val_f1=-1.0, seconds=0.0)
    best_state: dict[str, torch.Tensor] | None = None
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        report = _run_epoch(model, train, val, config, criterion, optimiser, device, generator, epoch)
        scheduler.step()
        result.history.append(report)
        if report.val_f1 > result.best_val_f1:
            result.best_epoch, result.best_val_f1 = epoch, report.val_f1
            best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(report)
    result.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return result


def _run_epoch(model, train, val, config, criterion, optimiser, device, generator, epoch) -> EpochReport:
    start = time.perf_counter()
    model.train()
    total_loss = 0.0
    x, y = train
    for idx in _batches(len(x), config.batch_size, generator):
        if len(idx) < 2:
            continue  # BatchNorm needs more than one sample per batch
        logits = model(_to_device(x[idx], device))
        loss = criterion(logits, torch.from_numpy(y[idx]).long().to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total_loss += float(loss) * len(idx)
    train_seconds = time.perf_counter() - start
    val_loss, counts = evaluate(model, val, criterion, config.batch_size, device)
    scores = segmentation_metrics(counts)
    return EpochReport(
        epoch=epoch, train_loss=total_loss / len(x), val_loss=val_loss,
        val_precision=scores["precision"], val_recall=scores["recall"], val_f1=scores["f1"],
        learning_rate=optimiser.param_groups[0]["lr"], images_per_second=len(x) / train_seconds,
        seconds=time.perf_counter() - start,
    )


@torch.inference_mode()
def evaluate(model: nn.Module, data: tuple[np.ndarray, np.ndarray], criterion: nn.Module,
             batch_size: int, device: torch.device) -> tuple[float, ConfusionCounts]:
    """Mean loss and summed confusion counts of ``model`` over ``data``."""
    model.eval()
    x, y = data
    total_loss, counts = 0.0, ConfusionCounts()
    for idx in _batches(len(x), batch_size, None):
        logits = model(_to_device(x[idx], device))
        target = torch.from_numpy(y[idx]).long().to(device)
        total_loss += float(criterion(logits, target)) * len(idx)
        counts = counts + confusion_counts(logits.argmax(1).cpu().numpy(), y[idx])
    return total_loss / max(len(x), 1), counts


@torch.inference_mode()
def predict_masks(model: nn.Module, x: np.ndarray, batch_size: int = 8,
                  device: torch.device | None = None) -> np.ndarray:
    """Landslide masks (uint8 {0, 1}, shape N x H x W) for float32 inputs (N, C, H, W)."""
    device = device or pick_device()
    model.to(device, memory_format=torch.channels_last).eval()
    out = [model(_to_device(x[idx], device)).argmax(1).to(torch.uint8).cpu().numpy()
           for idx in _batches(len(x), batch_size, None)]
    return np.concatenate(out) if out else np.zeros((0, *x.shape[2:]), dtype=np.uint8)
