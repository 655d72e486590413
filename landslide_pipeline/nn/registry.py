"""Name-to-class registry of the segmentation architectures."""

from __future__ import annotations

from torch import nn

from landslide_pipeline.nn.fcn import FCN8s
from landslide_pipeline.nn.linknet import LinkNet
from landslide_pipeline.nn.unet import ResUNet, UNet, UNetUpsampleConv

#: Architecture classes by registry name. Every class takes
#: ``(in_channels, num_classes=2, width=1.0)``.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "unet-3x3": UNetUpsampleConv,
    "resunet": ResUNet,
    "fcn": FCN8s,
    "linknet": LinkNet,
}


def available_architectures() -> list[str]:
    """Names accepted by :func:`create_model`.

    Returns:
        The registry names, sorted.
    """
    return sorted(ARCHITECTURES)


def create_model(name: str, in_channels: int, num_classes: int = 2, width: float = 1.0) -> nn.Module:
    """Build a randomly initialised segmentation model by name.

    The model maps ``(N, in_channels, H, W)`` to logits ``(N, num_classes, H, W)``;
    H and W must be multiples of 32, otherwise its forward raises ``ValueError``.

    Args:
        name: registry name (case-insensitive), one of :func:`available_architectures`.
        in_channels: number of input bands (>= 1).
        num_classes: number of output logit channels (>= 1).
        width: channel multiplier (> 0); channels are ``max(1, round(c * width))``,
            so 1.0 is the published architecture and e.g. 0.125 trains on a CPU.

    Returns:
        The model, in training mode.

    Raises:
        ValueError: for an unknown name or an invalid size argument.
    """
    key = name.strip().lower()
    if key not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; known: {', '.join(available_architectures())}.")
    if in_channels < 1 or num_classes < 1:
        raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels} and {num_classes}.")
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}.")
    return ARCHITECTURES[key](in_channels, num_classes=num_classes, width=width)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters, trainable or not (shared tensors counted once).

    Args:
        model: any module.

    Returns:
        The total element count of ``model.parameters()``.
    """
    return sum(parameter.numel() for parameter in model.parameters())
