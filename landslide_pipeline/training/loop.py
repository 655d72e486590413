"""The one training loop every architecture goes through.

Each epoch ends with a checkpoint (model, optimiser, scheduler, random-number state, best
weights so far, history) when a checkpoint path is given; a later call with the same path resumes
after the last completed epoch and, the random state being restored, reaches the same weights as
an uninterrupted run.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from landslide_pipeline.metrics import ConfusionCounts, confusion_counts, segmentation_metrics
from landslide_pipeline.nn import create_model
from landslide_pipeline.training.losses import LossName, make_loss
from landslide_pipeline.training.performance import cpu_supports_bf16

#: Forward precision in training: ``bf16`` runs the model under bfloat16 autocast (weights,
#: gradients, loss and Adam stay fp32); ``auto`` is bf16 on a CPU with native bf16 dot
#: products (AVX512-BF16 or AMX), where it is 1.4-2x faster, and fp32 elsewhere (without them
#: bf16 is 1.8x slower).
Precision = Literal["fp32", "bf16", "auto"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "auto")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser, schedule and loss: Adam with step decay (lr x gamma every step_size epochs)."""

    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    step_size: int = 30
    gamma: float = 0.1
    loss: LossName = "weighted_ce"
    seed: int = 0
    precision: Precision = "fp32"


def uses_bf16(precision: Precision, device: torch.device) -> bool:
    """Whether training on ``device`` at ``precision`` runs the forward pass in bfloat16."""
    if precision == "auto":
        return device.type == "cpu" and cpu_supports_bf16()
    return precision == "bf16"


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
    resumed_from_epoch: int = 0


@dataclass
class _State:
    """Everything an interrupted run needs to continue."""

    model: nn.Module
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    result: TrainingResult
    best_state: dict[str, torch.Tensor] | None = None


def pick_device() -> torch.device:
    """CUDA when present, else the CPU; chosen at run time so the same code runs on both."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def init_model(architecture: str, in_channels: int, width: float, seed: int, num_classes: int = 2) -> nn.Module:
    """A registry model whose initial weights depend only on ``seed``."""
    torch.manual_seed(seed)
    return create_model(architecture, in_channels, num_classes, width=width)


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
    checkpoint: Path | None = None,
) -> TrainingResult:
    """Trains ``model`` in place and leaves it holding the weights of its best validation-F1 epoch.

    Args:
        model: Any registry architecture (logits of shape N x classes x H x W).
        train: (x, y) arrays: float32 (N, C, H, W) and uint8 (N, H, W).
        val: Validation arrays of the same form.
        config: Optimiser, schedule, loss and seed.
        device: Where to train; ``pick_device()`` when None.
        on_epoch: Called with each epoch's report (progress logging).
        checkpoint: File to save after every epoch and to resume from if it exists.
    """
    torch.manual_seed(config.seed)
    device = device or pick_device()
    model.to(device, memory_format=torch.channels_last)
    criterion = make_loss(config.loss, train[1]).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    state = _State(model, optimiser, torch.optim.lr_scheduler.StepLR(optimiser, config.step_size, config.gamma),
                   torch.Generator().manual_seed(config.seed), TrainingResult(0, -1.0, 0.0))
    if checkpoint is not None and checkpoint.is_file():
        _restore(state, checkpoint, device)
    start = time.perf_counter() - state.result.seconds
    for epoch in range(len(state.result.history) + 1, config.epochs + 1):
        report = _run_epoch(model, train, val, config, criterion, optimiser, device, state.generator, epoch)
        state.scheduler.step()
        _record(state, report)
        state.result.seconds = time.perf_counter() - start
        if checkpoint is not None:
            _save(state, checkpoint)
        if on_epoch is not None:
            on_epoch(report)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    return state.result


def _record(state: _State, report: EpochReport) -> None:
    state.result.history.append(report)
    if report.val_f1 > state.result.best_val_f1:
        state.result.best_epoch, state.result.best_val_f1 = report.epoch, report.val_f1
        state.best_state = copy.deepcopy(state.model.state_dict())


def _save(state: _State, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "model": state.model.state_dict(), "optimiser": state.optimiser.state_dict(),
        "scheduler": state.scheduler.state_dict(), "generator": state.generator.get_state(),
        "torch_rng": torch.get_rng_state(), "best_state": state.best_state,
        "history": [asdict(r) for r in state.result.history], "seconds": state.result.seconds,
    }
    staging = path.with_suffix(".tmp")
    torch.save(payload, staging)
    os.replace(staging, path)


def _restore(state: _State, path: Path, device: torch.device) -> None:
    payload = torch.load(path, map_location=device, weights_only=True)
    state.model.load_state_dict(payload["model"])
    state.optimiser.load_state_dict(payload["optimiser"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    state.best_state = payload["best_state"]
    for report in (EpochReport(**r) for r in payload["history"]):
        state.result.history.append(report)
        if report.val_f1 > state.result.best_val_f1:
            state.result.best_epoch, state.result.best_val_f1 = report.epoch, report.val_f1
    state.result.seconds = payload["seconds"]
    state.result.resumed_from_epoch = len(state.result.history)


def _run_epoch(model, train, val, config, criterion, optimiser, device, generator, epoch) -> EpochReport:
    start = time.perf_counter()
    model.train()
    total_loss, seen = 0.0, 0
    x, y = train
    bf16 = uses_bf16(config.precision, device)
    for idx in _batches(len(x), config.batch_size, generator):
        if len(idx) < 2:
            continue  # BatchNorm needs more than one sample per batch
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(_to_device(x[idx], device))
        loss = criterion(logits.float(), torch.from_numpy(y[idx]).long().to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total_loss += float(loss.detach()) * len(idx)
        seen += len(idx)
    train_seconds = time.perf_counter() - start
    val_loss, counts = evaluate(model, val, criterion, config.batch_size, device)
    scores = segmentation_metrics(counts)
    return EpochReport(
        epoch=epoch, train_loss=total_loss / max(seen, 1), val_loss=val_loss,
        val_precision=scores["precision"], val_recall=scores["recall"], val_f1=scores["f1"],
        learning_rate=optimiser.param_groups[0]["lr"], images_per_second=seen / train_seconds,
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
