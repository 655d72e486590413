"""The one training loop every architecture goes through.

A model trains on fresh augmented variants of its training tiles every epoch
(``training.dataset.AugmentedTiles``), normalised with the per-band statistics of those tiles,
under AdamW or Adam with a step-decay or warm-up + cosine schedule (stepped every batch). After
each epoch it is scored on its validation tiles at every threshold at once
(``metrics.calibration``); the epoch with the best calibrated validation F1 is kept, with its
threshold.

Each epoch ends with a checkpoint (model, optimiser, scheduler, random-number state, best weights
and validation histogram so far, history) when a checkpoint path is given; a later call with the
same path resumes after the last completed epoch and, the augmentation being a pure function of
(seed, epoch, tile) and the shuffling state being restored, reaches the same weights as an
uninterrupted run. Checkpoints are written atomically under a lock (``storage.atomic_file``); one
that cannot be read (truncated, corrupt) is renamed ``<name>.corrupt``, logged, and training starts
from scratch.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from landslide_pipeline.metrics import segmentation_metrics
from landslide_pipeline.metrics.calibration import ARGMAX_THRESHOLD, ProbabilityHistogram
from landslide_pipeline.nn import create_model
from landslide_pipeline.nn.segmenter import LANDSLIDE_CLASS, BandNormalization, NormalizedNetwork, Segmenter
from landslide_pipeline.storage import atomic_file
from landslide_pipeline.training.augment import AugmentationSpec
from landslide_pipeline.training.checkpoint import UNREADABLE_TORCH_FILE
from landslide_pipeline.training.dataset import AugmentedTiles, Tiles, TrainingSet, batches
from landslide_pipeline.training.losses import LossName, make_loss
from landslide_pipeline.training.normalization import band_statistics
from landslide_pipeline.training.performance import cpu_supports_bf16

logger = logging.getLogger(__name__)

#: Forward precision in training: ``bf16`` runs the model under bfloat16 autocast (weights,
#: gradients, loss and the optimiser stay fp32); ``auto`` is bf16 on a CPU with native bf16 dot
#: products (AVX512-BF16 or AMX), where it is 1.4-2x faster, and fp32 elsewhere (without them
#: bf16 is 1.8x slower).
Precision = Literal["fp32", "bf16", "auto"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "auto")
Optimizer = Literal["adam", "adamw"]
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw")
#: ``step``: lr x gamma every step_size epochs (study B); ``cosine``: linear warm-up from lr / 25
#: over warmup_epochs, then a half cosine down to lr / 1000 at the last batch.
Schedule = Literal["step", "cosine"]
SCHEDULES: tuple[str, ...] = ("step", "cosine")
WARMUP_START = 1 / 25
COSINE_FLOOR = 1e-3


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss: stopped before the weights are poisoned."""


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser, schedule, loss, augmentation and precision of one training run."""

    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    optimizer: Optimizer = "adam"
    weight_decay: float = 0.0
    schedule: Schedule = "step"
    warmup_epochs: float = 0.0
    step_size: int = 30
    gamma: float = 0.1
    loss: LossName = "weighted_ce"
    seed: int = 0
    precision: Precision = "fp32"
    augmentation: AugmentationSpec = field(default_factory=AugmentationSpec)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs} and {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {SCHEDULES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def uses_bf16(precision: Precision, device: torch.device) -> bool:
    """Whether training on ``device`` at ``precision`` runs the forward pass in bfloat16."""
    if precision == "auto":
        return device.type == "cpu" and cpu_supports_bf16()
    return precision == "bf16"


def learning_rate_factor(config: TrainingConfig, step: int, steps_per_epoch: int) -> float:
    """The factor on ``config.learning_rate`` at optimiser step ``step`` (0-based)."""
    if config.schedule == "step":
        return config.gamma ** ((step // steps_per_epoch) // config.step_size)
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    if step < warmup:
        return WARMUP_START + (1 - WARMUP_START) * step / warmup
    progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
    return COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did: losses, validation scores (arg-max and calibrated), speed."""

    epoch: int
    train_loss: float
    val_loss: float
    val_precision: float
    val_recall: float
    val_f1: float  # arg-max decision
    val_f1_calibrated: float  # at the epoch's best threshold
    val_threshold: float
    learning_rate: float
    images_per_second: float
    seconds: float


@dataclass
class TrainingResult:
    """The kept epoch, its calibrated validation F1, threshold and histogram, and every epoch's report."""

    best_epoch: int
    best_val_f1: float  # calibrated, at ``threshold``
    seconds: float
    threshold: float = ARGMAX_THRESHOLD
    histogram: ProbabilityHistogram | None = None  # validation scores of the best epoch
    history: list[EpochReport] = field(default_factory=list)
    resumed_from_epoch: int = 0


@dataclass
class FoldData:
    """What one model trains and is validated on: tiles of a training set, and which bands."""

    samples: TrainingSet
    train: np.ndarray
    val: np.ndarray
    channels: Sequence[int] | None = None

    @property
    def bands(self) -> list[str]:
        return self.samples.bands if self.channels is None else [self.samples.bands[c] for c in self.channels]


@dataclass
class _State:
    """Everything an interrupted run needs to continue."""

    model: NormalizedNetwork
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    result: TrainingResult
    best_state: dict[str, torch.Tensor] | None = None


def pick_device() -> torch.device:
    """CUDA when present, else the CPU; chosen at run time so the same code runs on both."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def init_model(architecture: str, in_channels: int, width: float, seed: int, num_classes: int = 2) -> nn.Module:
    """A registry network whose initial weights depend only on ``seed``."""
    torch.manual_seed(seed)
    return create_model(architecture, in_channels, num_classes, width=width)


def fit_normalization(data: FoldData, batch_size: int = 64) -> BandNormalization:
    """Per-band normalisation from the training tiles of ``data`` (never its validation tiles)."""
    channels = list(range(len(data.samples.bands))) if data.channels is None else list(data.channels)
    stats = band_statistics(data.samples.images[idx][:, channels] for idx in batches(data.train, batch_size))
    return BandNormalization(stats.mean, stats.std)


def class_pixel_counts(data: FoldData, batch_size: int = 256) -> np.ndarray:
    """Background and landslide pixels of the training tiles' labels."""
    counts = np.zeros(2, dtype=np.int64)
    for idx in batches(data.train, batch_size):
        counts += np.bincount(data.samples.masks[idx].ravel(), minlength=2)[:2]
    return counts


def _to_device(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    return x.to(device, memory_format=torch.channels_last)


def train_segmentation(
    model: NormalizedNetwork,
    data: FoldData,
    config: TrainingConfig,
    device: torch.device | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    checkpoint: os.PathLike | None = None,
) -> TrainingResult:
    """Trains ``model`` in place and leaves it holding the weights of its best validation epoch.

    Args:
        model: A registry network behind its normalisation (``fit_normalization``).
        data: The training set, the training and validation tiles, and the bands to use.
        config: Optimiser, schedule, loss, augmentation and seed.
        device: Where to train; ``pick_device()`` when None.
        on_epoch: Called with each epoch's report (progress logging).
        checkpoint: File to save after every epoch and to resume from if it exists.

    Returns:
        The best epoch, its calibrated validation F1, threshold and validation histogram, and
        every epoch's report.
    """
    torch.manual_seed(config.seed)
    device = device or pick_device()
    # nn.Module.to takes memory_format (documented), but torch's typed overloads of it omit the argument.
    model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    criterion = make_loss(config.loss, class_pixel_counts(data)).to(device)
    optimiser_type = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimiser = optimiser_type(model.network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    # The data path normalises on the CPU, with a copy of the model's own normalisation.
    train = AugmentedTiles(data.samples, data.train, copy.deepcopy(model.normalization).cpu(), config.augmentation,
                           config.seed, data.channels)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: learning_rate_factor(config, step, steps_per_epoch))
    state = _State(model, optimiser, scheduler, torch.Generator().manual_seed(config.seed), TrainingResult(0, -1.0, 0.0))
    if checkpoint is not None and os.path.isfile(checkpoint):
        _restore(state, checkpoint, device)
    start = time.perf_counter() - state.result.seconds
    for epoch in range(len(state.result.history) + 1, config.epochs + 1):
        train.set_epoch(epoch)
        report, histogram = _run_epoch(state, train, data, config, criterion, device, epoch)
        _record(state, report, histogram)
        state.result.seconds = time.perf_counter() - start
        if checkpoint is not None:
            _save(state, checkpoint)
        if on_epoch is not None:
            on_epoch(report)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    return state.result


def _record(state: _State, report: EpochReport, histogram: ProbabilityHistogram) -> None:
    state.result.history.append(report)
    if report.val_f1_calibrated > state.result.best_val_f1:
        result = state.result
        result.best_epoch, result.best_val_f1 = report.epoch, report.val_f1_calibrated
        result.threshold, result.histogram = report.val_threshold, histogram
        state.best_state = copy.deepcopy(state.model.state_dict())


def _save(state: _State, path: os.PathLike) -> None:
    result = state.result
    payload: dict[str, Any] = {
        "model": state.model.state_dict(), "optimiser": state.optimiser.state_dict(),
        "scheduler": state.scheduler.state_dict(), "generator": state.generator.get_state(),
        "torch_rng": torch.get_rng_state(), "best_state": state.best_state,
        "history": [asdict(r) for r in result.history], "seconds": result.seconds,
        "histogram": None if result.histogram is None else {
            k: torch.from_numpy(v) for k, v in (("positives", result.histogram.positives),
                                                ("negatives", result.histogram.negatives))},
    }
    with atomic_file(Path(path)) as staging:  # one writer at a time, unique staging name, fsync'ed
        torch.save(payload, staging)


_CHECKPOINT_KEYS = frozenset({"model", "optimiser", "scheduler", "generator", "torch_rng", "best_state", "history",
                              "seconds", "histogram"})


def _restore(state: _State, path: os.PathLike, device: torch.device) -> None:
    """Resumes ``state`` from the checkpoint at ``path``; one that cannot be read is set aside instead."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except PermissionError:
        raise  # a readable checkpoint someone else owns: not ours to set aside
    except UNREADABLE_TORCH_FILE as err:
        _set_aside(path, err)
        return
    if not isinstance(payload, dict) or not _CHECKPOINT_KEYS <= payload.keys():
        _set_aside(path, TypeError("not a training checkpoint (other keys)"))
        return
    state.model.load_state_dict(payload["model"])
    state.optimiser.load_state_dict(payload["optimiser"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    state.best_state = payload["best_state"]
    for report in (EpochReport(**r) for r in payload["history"]):
        state.result.history.append(report)
        if report.val_f1_calibrated > state.result.best_val_f1:
            state.result.best_epoch, state.result.best_val_f1 = report.epoch, report.val_f1_calibrated
            state.result.threshold = report.val_threshold
    if payload["histogram"] is not None:
        state.result.histogram = ProbabilityHistogram(payload["histogram"]["positives"].numpy(),
                                                      payload["histogram"]["negatives"].numpy())
    state.result.seconds = payload["seconds"]
    state.result.resumed_from_epoch = len(state.result.history)


def _set_aside(path: os.PathLike, error: BaseException) -> None:
    """Renames an unreadable checkpoint to ``<name>.corrupt`` (replacing an older one), so training restarts."""
    aside = f"{os.fspath(path)}.corrupt"
    os.replace(path, aside)
    message = str(error).strip().splitlines()
    logger.warning("checkpoint %s cannot be read (%s: %s); set aside as %s, training starts from scratch",
                   os.fspath(path), type(error).__name__, message[0][:200] if message else "", aside)


def _tile_names(data: FoldData, rows: list[int]) -> str:
    """``survey/tile`` of training-set rows, for messages that must lead a user to the imagery."""
    tiles = data.samples.tiles
    if not {"survey_id", "tile_id"} <= set(tiles.columns):
        return str(sorted(rows))
    return ", ".join(f"{tiles['survey_id'].iloc[r]}/{tiles['tile_id'].iloc[r]}" for r in sorted(rows))


def _epoch_batches(train: AugmentedTiles, batch_size: int, generator: torch.Generator) -> Iterator:
    """(sample numbers, batch) pairs of one epoch, in the order the generator shuffles them."""
    order = torch.randperm(len(train), generator=generator).tolist()
    batches_ = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    # torch types collate_fn as taking a list of samples; with __getitems__ it takes that method's batch.
    loader = DataLoader(train, batch_sampler=batches_, collate_fn=AugmentedTiles.collate)  # type: ignore[arg-type]
    return zip(batches_, loader)


def _run_epoch(state: _State, train: AugmentedTiles, data: FoldData, config: TrainingConfig, criterion: nn.Module,
               device: torch.device, epoch: int) -> tuple[EpochReport, ProbabilityHistogram]:
    start = time.perf_counter()
    network = state.model.network
    network.train()
    total_loss, seen = 0.0, 0
    bf16 = uses_bf16(config.precision, device)
    for items, (x, y, draws) in _epoch_batches(train, config.batch_size, state.generator):
        if len(x) < 2:
            continue  # BatchNorm needs more than one sample per batch
        x, y = train.augment(x.to(device), y.to(device), draws)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = network(x.contiguous(memory_format=torch.channels_last))
        loss = criterion(logits.float(), y.long())
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"epoch {epoch}: the training loss is {float(loss)} on a batch of tiles "
                                     f"{_tile_names(data, [int(train.indices[i % len(train.indices)]) for i in items])}; "
                                     "the weights would be poisoned (check those tiles' imagery)")
        state.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        state.optimiser.step()
        state.scheduler.step()
        total_loss += float(loss.detach()) * len(x)
        seen += len(x)
    train_seconds = time.perf_counter() - start
    val_loss, histogram = validate(state.model, data, criterion, config.batch_size, device)
    threshold, counts = histogram.best_threshold()
    argmax = segmentation_metrics(histogram.counts_at(ARGMAX_THRESHOLD))
    report = EpochReport(
        epoch=epoch, train_loss=total_loss / max(seen, 1), val_loss=val_loss, val_precision=argmax["precision"],
        val_recall=argmax["recall"], val_f1=argmax["f1"], val_f1_calibrated=segmentation_metrics(counts)["f1"],
        val_threshold=threshold, learning_rate=state.optimiser.param_groups[0]["lr"],
        images_per_second=seen / train_seconds, seconds=time.perf_counter() - start,
    )
    return report, histogram


@torch.inference_mode()
def validate(model: NormalizedNetwork, data: FoldData, criterion: nn.Module, batch_size: int,
             device: torch.device) -> tuple[float, ProbabilityHistogram]:
    """Mean loss and the probability histogram of ``model`` on the validation tiles."""
    model.eval()
    total_loss, histogram = 0.0, ProbabilityHistogram()
    for idx in batches(data.val, batch_size):
        x = data.samples.images[idx]
        x = x if data.channels is None else x[:, list(data.channels)]
        y = data.samples.masks[idx]
        logits = model(_to_device(x, device)).float()
        total_loss += float(criterion(logits, torch.from_numpy(y).long().to(device))) * len(idx)
        histogram.add(logits.softmax(dim=1)[:, LANDSLIDE_CLASS].cpu().numpy(), y)
    return total_loss / max(len(data.val), 1), histogram


@torch.inference_mode()
def predict_probability(model: Segmenter, images: Tiles, indices: np.ndarray, batch_size: int = 8,
                        device: torch.device | None = None,
                        channels: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Landslide probabilities of tiles ``indices``, a batch at a time.

    Yields:
        (batch indices, float32 probabilities of shape (B, H, W)).
    """
    device = device or pick_device()
    # nn.Module.to takes memory_format (documented), but torch's typed overloads of it omit the argument.
    model.to(device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    for idx in batches(np.asarray(indices), batch_size):
        x = images[idx]
        x = x if channels is None else x[:, list(channels)]
        yield idx, model(_to_device(x, device))[:, LANDSLIDE_CLASS].float().cpu().numpy()


def score_histogram(model: Segmenter, images: Tiles, masks: Tiles, indices: np.ndarray, batch_size: int = 8,
                    device: torch.device | None = None, channels: Sequence[int] | None = None) -> ProbabilityHistogram:
    """The probability histogram of ``model`` on tiles ``indices`` against ``masks``."""
    histogram = ProbabilityHistogram()
    for idx, probability in predict_probability(model, images, indices, batch_size, device, channels):
        histogram.add(probability, masks[idx])
    return histogram


def predict_masks(model: Segmenter, x: np.ndarray, threshold: float = ARGMAX_THRESHOLD, batch_size: int = 8,
                  device: torch.device | None = None) -> np.ndarray:
    """Landslide masks (uint8 {0, 1}, shape N x H x W) for float32 inputs (N, C, H, W)."""
    out = [(probability > threshold).astype(np.uint8)
           for _, probability in predict_probability(model, x, np.arange(len(x)), batch_size, device)]
    return np.concatenate(out) if out else np.zeros((0, *x.shape[2:]), dtype=np.uint8)
