"""Saving and reloading models (a :class:`~landslide_pipeline.nn.segmenter.Segmenter`) as a state
dict plus a JSON description.

A model folder holds ``weights.pt`` (``torch.save`` of the state dict, reloaded with
``weights_only=True``: only tensors are read back, no pickled Python objects) and ``model.json``
(:class:`ModelSpec`): the input contract (band names and input scaling), the decision threshold,
and one entry per member network (architecture, width, fold, the per-band normalisation it was
trained with). A fold model has one member, a fold ensemble k. The networks are rebuilt from
the registry by name.

Folders written before normalisation, calibration and ensembles existed (a flat ``model.json``
with one ``architecture``) still load, as one member with no normalisation, threshold 0.5 and no
input-scaling check.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypedDict, Unpack

import torch
from torch import nn

from landslide_pipeline.layout import MODEL_CALIBRATION, MODEL_DESCRIPTION, MODEL_WEIGHTS, LabelSource
from landslide_pipeline.metrics.calibration import ProbabilityHistogram
from landslide_pipeline.nn import count_parameters, create_model
from landslide_pipeline.nn.segmenter import BandNormalization, NormalizedNetwork, Segmenter

#: Input scaling of models saved before the contract was recorded: not checked.
ANY_SCALING = "any"
#: The ``fold`` of a model that is not one fold's (an ensemble of all of them).
ENSEMBLE_FOLD = -1


#: What ``torch.load(..., weights_only=True)`` raises for a file that is not a readable torch file
#: (measured with torch 2.13 on truncated, bit-flipped and random files): a truncated zip gives
#: RuntimeError (no central directory), random bytes mostly pickle.UnpicklingError, and also
#: EOFError, OSError (EINVAL), IndexError, KeyError and ValueError (UnicodeDecodeError).
UNREADABLE_TORCH_FILE: tuple[type[Exception], ...] = (
    RuntimeError, pickle.UnpicklingError, EOFError, OSError, IndexError, KeyError, ValueError)
#: ... and a file that loads but is not a state dict (TypeError), or one that does not fit model.json
#: (RuntimeError from load_state_dict).
_UNLOADABLE_WEIGHTS: tuple[type[Exception], ...] = (*UNREADABLE_TORCH_FILE, TypeError)


class ModelInputError(ValueError):
    """Imagery that breaks a model's input contract (band count or input scaling)."""


class ModelFileError(ValueError):
    """A model folder whose weights.pt or model.json cannot be read (corrupt, truncated or not a model's)."""


@dataclass(frozen=True)
class MemberSpec:
    """One trained network of a model: how to rebuild it and how it was trained."""

    architecture: str
    width: float
    fold: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    parameters: int = 0
    best_epoch: int = 0
    train_seconds: float = 0.0
    mlflow_run_id: str = ""

    def build(self, in_channels: int, num_classes: int) -> NormalizedNetwork:
        network = create_model(self.architecture, in_channels, num_classes, width=self.width)
        return NormalizedNetwork(BandNormalization(self.mean, self.std), network)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a saved model and to use it correctly.

    Attributes:
        bands: Input band names, in order (e.g. red, green, blue, slope).
        image_scaling: How image bands must be scaled (``training.features.input_scaling``).
        members: The member networks (one, or one per fold of an ensemble).
        label_source: The labels the members were trained on.
        num_classes: Output classes (2: background, landslide).
        threshold: Landslide where the probability exceeds it (calibrated on validation folds).
        flips: Test-time flips (mean over the image and its two mirror images).
        mlflow_run_id: The MLflow run that holds this model.
    """

    bands: list[str]
    image_scaling: str
    members: list[MemberSpec]
    label_source: str = LabelSource.MANUAL
    num_classes: int = 2
    threshold: float = 0.5
    flips: bool = False
    mlflow_run_id: str = ""

    @property
    def kind(self) -> str:
        """``single`` (one network) or ``ensemble``."""
        return "single" if len(self.members) == 1 else "ensemble"

    @property
    def in_channels(self) -> int:
        return len(self.bands)

    @property
    def architecture(self) -> str:
        return "+".join(dict.fromkeys(m.architecture for m in self.members))

    @property
    def fold(self) -> int:
        return self.members[0].fold if self.kind == "single" else ENSEMBLE_FOLD

    @property
    def width(self) -> float:
        return self.members[0].width

    @property
    def parameters(self) -> int:
        return sum(m.parameters for m in self.members)

    @property
    def best_epoch(self) -> int:
        return self.members[0].best_epoch

    @property
    def train_seconds(self) -> float:
        return sum(m.train_seconds for m in self.members)

    def build(self) -> Segmenter:
        """The model with fresh weights (load a state dict into it)."""
        return Segmenter([m.build(self.in_channels, self.num_classes) for m in self.members], flips=self.flips)

    def check_input(self, n_bands: int, scaling: str, what: str = "the imagery") -> None:
        """Raises ModelInputError unless ``n_bands`` bands of ``scaling`` imagery fit this model."""
        if n_bands != self.in_channels:
            raise ModelInputError(f"{what} gives {n_bands} input bands, the model takes {self.in_channels} "
                                  f"({', '.join(self.bands)})")
        if ANY_SCALING not in (scaling, self.image_scaling) and scaling != self.image_scaling:
            raise ModelInputError(f"{what} is {scaling} imagery, the model was trained on {self.image_scaling} "
                                  "imagery: its inputs would be scaled differently (convert the imagery, or "
                                  "train a model on imagery like it)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        if "members" not in data:  # the flat format of a single network without normalisation
            bands = list(data["bands"])
            member = MemberSpec(data["architecture"], data["width"], data["fold"], (0.0,) * len(bands),
                                (1.0,) * len(bands), data.get("parameters", 0), data.get("best_epoch", 0),
                                data.get("train_seconds", 0.0), data.get("mlflow_run_id", ""))
            return cls(bands, ANY_SCALING, [member], data.get("label_source", LabelSource.MANUAL), data.get("num_classes", 2),
                       mlflow_run_id=data.get("mlflow_run_id", ""))
        members = [MemberSpec(**{**m, "mean": tuple(m["mean"]), "std": tuple(m["std"])}) for m in data["members"]]
        return cls(**{**data, "members": members})


def config_digest(config: dict) -> str:
    """A short stable hash of a configuration, to recognise runs made with the same one."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


class TrainingFacts(TypedDict, total=False):
    """How a member network was trained: the optional trailing fields of :class:`MemberSpec`."""

    best_epoch: int
    train_seconds: float
    mlflow_run_id: str


def member_spec(network: nn.Module, architecture: str, width: float, fold: int, normalization: BandNormalization,
                **training_facts: Unpack[TrainingFacts]) -> MemberSpec:
    """The description of a trained network and the normalisation it was trained with."""
    return MemberSpec(architecture, width, fold, tuple(normalization.mean.flatten().tolist()),
                      tuple(normalization.std.flatten().tolist()), count_parameters(network), **training_facts)


def ensemble(models: Sequence[tuple[Segmenter, ModelSpec]], threshold: float, flips: bool) -> tuple[Segmenter, ModelSpec]:
    """One model averaging the members of ``models`` (e.g. the k fold models of an architecture).

    Raises:
        ValueError: models with different input bands or input scaling.
    """
    specs = [spec for _, spec in models]
    if len({(tuple(s.bands), s.image_scaling) for s in specs}) != 1:
        raise ValueError("an ensemble needs members with the same input bands and input scaling")
    members = [member for model, _ in models for member in model.networks]
    spec = replace(specs[0], members=[m for s in specs for m in s.members], threshold=threshold, flips=flips,
                   mlflow_run_id="")
    return Segmenter(members, flips=flips), spec


def save_model(directory: Path, model: Segmenter, spec: ModelSpec) -> None:
    """Writes the model folder: weights.pt (state dict) and model.json (its description)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, directory / MODEL_WEIGHTS)
    (directory / MODEL_DESCRIPTION).write_text(json.dumps(spec.to_dict(), indent=2))


def read_spec(directory: Path) -> ModelSpec:
    """The description (model.json) of a saved model."""
    path = Path(directory) / MODEL_DESCRIPTION
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a model folder (no {MODEL_DESCRIPTION})")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        return ModelSpec.from_dict(data)
    except (ValueError, KeyError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelFileError(f"{path}: not a readable model description ({_describe(err)}); "
                             "train or download the model again") from err


def load_model(directory: Path, device: torch.device | str = "cpu") -> tuple[Segmenter, ModelSpec]:
    """Rebuilds a saved model on ``device``, in evaluation mode, with its description.

    Raises:
        FileNotFoundError: ``directory`` has no model.json.
        ModelFileError: model.json or weights.pt cannot be read, or the weights do not fit the
            description; the message names the file, and the architecture and fold.
    """
    spec = read_spec(directory)
    weights = Path(directory) / MODEL_WEIGHTS
    model = spec.build()
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
        if not isinstance(state, dict):
            raise TypeError(f"a {type(state).__name__}, not a state dict")
        if not any(key.startswith("members.") for key in state):  # a flat network's state dict
            state = {**{f"members.0.1.{k}": v for k, v in state.items()},
                     **{f"members.0.0.{k}": v for k, v in model.networks[0].normalization.state_dict().items()}}
        model.load_state_dict(state)
    except _UNLOADABLE_WEIGHTS as err:
        which = f"fold {spec.fold}" if spec.kind == "single" else f"{len(spec.members)}-member ensemble"
        raise ModelFileError(f"{weights}: cannot load the weights of the {spec.architecture} model ({which}): "
                             f"{_describe(err)}; train or download the model again") from err
    return model.to(device).eval(), spec


def _describe(err: BaseException) -> str:
    """The error's type and the first line of its message (torch's run to a paragraph)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def save_calibration(directory: Path, histogram: ProbabilityHistogram) -> None:
    """Keeps a fold model's validation histogram beside it (for its ensemble's threshold)."""
    (Path(directory) / MODEL_CALIBRATION).write_text(json.dumps(histogram.to_dict()))


def read_calibration(directory: Path) -> ProbabilityHistogram:
    """A fold model's validation histogram (calibration.json)."""
    path = Path(directory) / MODEL_CALIBRATION
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the fold model has no validation histogram; train it again")
    return ProbabilityHistogram.from_dict(json.loads(path.read_text()))


def fold_ensemble(model_dirs: Sequence[Path], flips: bool = False,
                  device: torch.device | str = "cpu") -> tuple[Segmenter, ModelSpec, ProbabilityHistogram]:
    """The ensemble of saved fold models, with the threshold that maximises F1 over their pooled
    out-of-fold validation predictions (each fold model on its own validation fold).

    Returns:
        The model, its description and the pooled validation histogram.
    """
    models = [load_model(d, device) for d in model_dirs]
    pooled = sum((read_calibration(d) for d in model_dirs), ProbabilityHistogram())
    threshold, _ = pooled.best_threshold()
    model, spec = ensemble(models, threshold, flips)
    return model.to(device).eval(), spec, pooled
