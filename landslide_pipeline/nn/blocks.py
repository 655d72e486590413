"""Building blocks shared by the segmentation architectures.

Every convolution that feeds a BatchNorm is created without a bias: the BN shift
makes it redundant, and this matches how the reference parameter counts are made.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

#: Every architecture downsamples by at most this factor, so input height and
#: width must be multiples of it.
INPUT_MULTIPLE = 32

#: Signature of an injectable ``(in_channels, out_channels) -> block`` factory.
BlockFactory = Callable[[int, int], nn.Module]


def scale_channels(channels: int, width: float) -> int:
    """Scale a reference channel count by a width multiplier.

    Args:
        channels: channel count of the full-width architecture.
        width: channel multiplier (1.0 is the published architecture).

    Returns:
        ``max(1, round(channels * width))``.
    """
    return max(1, round(channels * width))


def check_input_size(x: torch.Tensor, multiple: int = INPUT_MULTIPLE) -> None:
    """Raise if the spatial size of ``x`` is not a multiple of ``multiple``.

    Args:
        x: input batch of shape ``(N, C, H, W)``.
        multiple: required divisor of ``H`` and ``W``.

    Raises:
        ValueError: if ``H`` or ``W`` is not a multiple of ``multiple``.
    """
    height, width = x.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"Input height and width must be multiples of {multiple} "
            f"(the encoder's total downsampling), got {height}x{width}; pad or crop the tile."
        )


def deconv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool = False
) -> nn.ConvTranspose2d:
    """Transposed convolution whose output is exactly ``stride`` times its input.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: square kernel size (must be >= ``stride``).
        stride: upsampling factor.
        bias: whether to learn an additive bias (only for layers not followed by BN).

    Returns:
        The transposed convolution layer.
    """
    # Output size is (H - 1) * s - 2p + k + op; choose p, op so that it equals H * s.
    padding = (kernel_size - stride + 1) // 2
    output_padding = 2 * padding + stride - kernel_size
    return nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        bias=bias,
    )


class SubsampledPointwiseConv2d(nn.Conv2d):
    """A 1x1 convolution with stride s, computed as ``x[:, :, ::s, ::s]`` then a stride-1 1x1 conv.

    The same function, parameters and state-dict keys as ``nn.Conv2d(c_in, c_out, 1, stride=s)``.
    It keeps oneDNN off its strided 1x1 backward-weights kernel, which in torch 2.13.0 (oneDNN
    3.12, AVX-512) corrupts the heap for channels-last inputs with fewer than 16 channels and
    kills the process (uxlfoundation/oneDNN#6035): LinkNet at width 0.125 on 256-pixel tiles.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.stride
        return F.conv2d(x[:, :, ::rows, ::cols], self.weight, self.bias)


class ConvBNReLU(nn.Sequential):
    """Convolution (same padding, no bias) + BatchNorm + optional ReLU.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: square kernel size (odd).
        stride: convolution stride.
        relu: append a ReLU; residual branches leave it off until after the addition.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        relu: bool = True,
    ) -> None:
        conv = SubsampledPointwiseConv2d if kernel_size == 1 and stride > 1 else nn.Conv2d
        layers: list[nn.Module] = [
            conv(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DeconvBNReLU(nn.Sequential):
    """Transposed convolution (exact ``stride`` x upsampling) + BatchNorm + ReLU.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: square kernel size.
        stride: upsampling factor (1 keeps the size).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 2) -> None:
        super().__init__(
            deconv(in_channels, out_channels, kernel_size, stride),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 ConvBNReLU layers: the U-Net level block.

    Args:
        in_channels: number of input channels.
        out_channels: number of channels of both convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a shortcut, ReLU after the addition.

    The shortcut is the identity when shape is preserved, otherwise a 1x1 conv + BN
    projection (torchvision's "option B").

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        stride: stride of the first convolution and of the projection.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(in_channels, out_channels, stride=stride),
            ConvBNReLU(out_channels, out_channels, relu=False),
        )
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = (
            ConvBNReLU(in_channels, out_channels, kernel_size=1, stride=stride, relu=False)
            if needs_projection
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: input of shape ``(N, in_channels, H, W)``.

        Returns:
            Output of shape ``(N, out_channels, H / stride, W / stride)``.
        """
        return self.relu(self.body(x) + self.shortcut(x))


class ResidualDoubleConv(BasicBlock):
    """U-Net double conv with a residual connection (the Res-U-Net level block).

    Identical to a stride-1 ResNet :class:`BasicBlock`, so it has exactly the
    parameters of :class:`DoubleConv` plus the projection when channels change.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, stride=1)


def init_weights(module: nn.Module) -> None:
    """Kaiming-initialise convolutions, reset BatchNorm to identity, zero biases.

    Args:
        module: model whose submodules are initialised in place.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def bilinear_kernel_(layer: nn.ConvTranspose2d) -> None:
    """Initialise a channel-preserving transposed conv as bilinear upsampling.

    Used by FCN, whose upsampling layers start as bilinear interpolation.

    Args:
        layer: transposed convolution with equal input and output channels.
    """
    size = layer.kernel_size[0]
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - torch.abs(torch.arange(size, dtype=torch.float32) - center) / factor
    kernel = torch.outer(ramp, ramp)
    with torch.no_grad():
        layer.weight.zero_()
        for channel in range(min(layer.in_channels, layer.out_channels)):
            layer.weight[channel, channel] = kernel
        if layer.bias is not None:
            layer.bias.zero_()


__all__ = [
    "INPUT_MULTIPLE",
    "BasicBlock",
    "BlockFactory",
    "ConvBNReLU",
    "DeconvBNReLU",
    "DoubleConv",
    "ResidualDoubleConv",
    "bilinear_kernel_",
    "check_input_size",
    "deconv",
    "init_weights",
    "scale_channels",
]
