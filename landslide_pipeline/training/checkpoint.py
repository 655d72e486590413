"""Saving and reloading trained models as a state dict plus a JSON description.

Weights are stored with ``torch.save(state_dict)`` and reloaded with ``weights_only=True``: only
tensors are read back, no pickled Python objects, and the architecture is rebuilt from the
registry by name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from landslide_pipeline.nn import create_model

WEIGHTS = "weights.pt"
DESCRIPTION = "model.json"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a trained model."""

    architecture: str
    in_channels: int
    num_classes: int
    width: float
    bands: list[str]
    fold: int
    label_source: str
    parameters: int = 0
    best_epoch: int = 0
    train_seconds: float = 0.0
    mlflow_run_id: str = ""


def config_digest(config: dict) -> str:
    """A short stable hash of a configuration, to recognise runs made with the same one."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def save_model(directory: Path, model: nn.Module, spec: ModelSpec) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, directory / WEIGHTS)
    (directory / DESCRIPTION).write_text(json.dumps(asdict(spec), indent=2))


def load_model(directory: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, ModelSpec]:
    spec = ModelSpec(**json.loads((directory / DESCRIPTION).read_text()))
    model = create_model(spec.architecture, spec.in_channels, spec.num_classes, width=spec.width)
    state = torch.load(directory / WEIGHTS, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), spec
