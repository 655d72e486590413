"""U-Net (Ronneberger et al. 2015) with padded convolutions and BatchNorm, and Res-U-Net."""

from __future__ import annotations

import torch
from torch import nn

from landslide_pipeline.nn.blocks import (
    BlockFactory,
    DoubleConv,
    ResidualDoubleConv,
    check_input_size,
    init_weights,
    scale_channels,
)

#: Channels per level at width 1; the last entry is the bottleneck.
UNET_CHANNELS = (64, 128, 256, 512, 1024)


class UNet(nn.Module):
    """U-Net as described in study B.

    Contracting path: per level a block of two 3x3 convs (padding 1) + BN + ReLU,
    channels 64 -> 128 -> 256 -> 512 -> 1024 (bottleneck) with 2x2 max pooling in
    between. Expanding path: 2x2 transposed conv (stride 2, halves channels),
    concatenation with the skip, and the same block. A 1x1 conv maps to logits.

    Parameter count at width 1, 3 bands, 2 classes: 31,037,698 (the classic padded
    U-Net with BN and bias-free convs; e.g. milesial/Pytorch-UNet gives the same).
    Study B reports 34.5 M. Of the variants checked, the one that lands on that figure
    replaces each 2x2 up-convolution by a 3x3 convolution after nearest/bilinear
    upsampling (the common Keras "UpSampling2D + Conv2D(3)" reading of "up-conv"):
    it adds 5 * (1024*512 + 512*256 + 256*128 + 128*64) = 3,481,600 weights, giving
    34,519,298 (34.52 M). Conv biases (+5,888) or Keras-style counting of the BN
    moving statistics (+11,776) are too small to explain the gap. The original
    paper's 2x2 up-conv is kept here; ``UNetUpsampleConv`` (registry name
    ``unet-3x3``) is study B's 34.5 M variant.

    Height and width of the input must be multiples of 32 (the registry-wide
    contract; this network alone would accept multiples of 16).

    Args:
        in_channels: number of input bands.
        num_classes: number of output logit channels.
        width: channel multiplier; channels are ``max(1, round(c * width))``.
        block: ``(in_channels, out_channels) -> module`` factory for each level;
            Res-U-Net injects a residual block here.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int = 2,
        width: float = 1.0,
        block: BlockFactory = DoubleConv,
        up_conv: str = "transpose2x2",
    ) -> None:
        super().__init__()
        channels = [scale_channels(c, width) for c in UNET_CHANNELS]
        self.encoder = nn.ModuleList(
            block(c_in, c_out) for c_in, c_out in zip([in_channels, *channels[:-1]], channels)
        )
        self.pool = nn.MaxPool2d(2, stride=2)
        # Decoder modules are stored deepest first, i.e. in execution order.
        skip_channels = channels[-2::-1]
        self.upsample = nn.ModuleList(
            _up_conv(up_conv, deep, skip) for deep, skip in zip(channels[:0:-1], skip_channels)
        )
        self.decoder = nn.ModuleList(block(2 * skip, skip) for skip in skip_channels)
        self.head = nn.Conv2d(channels[0], num_classes, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute per-pixel logits.

        Args:
            x: input of shape ``(N, in_channels, H, W)``, H and W multiples of 32.

        Returns:
            Logits of shape ``(N, num_classes, H, W)``.

        Raises:
            ValueError: if H or W is not a multiple of 32.
        """
        check_input_size(x)
        x = self.encoder[0](x)
        skips = []
        for level in self.encoder[1:]:
            skips.append(x)
            x = level(self.pool(x))
        for upsample, level, skip in zip(self.upsample, self.decoder, reversed(skips)):
            x = level(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)


class ResUNet(UNet):
    """Res-U-Net (study A, Table 4): the U-Net with residual double-conv blocks.

    Each block adds its input to the output of the two 3x3 convs (identity when
    channels match, else a 1x1 conv + BN projection) before the final ReLU. Every
    U-Net level changes the channel count, so every block carries a projection; the
    parameter surplus over :class:`UNet` is exactly those projections.

    Args:
        in_channels: number of input bands.
        num_classes: number of output logit channels.
        width: channel multiplier; channels are ``max(1, round(c * width))``.
    """

    def __init__(self, in_channels: int, num_classes: int = 2, width: float = 1.0) -> None:
        super().__init__(in_channels, num_classes, width, block=ResidualDoubleConv)


class UNetUpsampleConv(UNet):
    """Study B's U-Net of 34.5 M parameters (Table 1): every 2x2 transposed up-convolution is a
    nearest-neighbour 2x upsampling followed by a 3x3 convolution (34,519,298 parameters at width
    1 with 3 bands and 2 classes)."""

    def __init__(self, in_channels: int, num_classes: int = 2, width: float = 1.0) -> None:
        super().__init__(in_channels, num_classes, width, up_conv="upsample3x3")


def _up_conv(kind: str, deep: int, skip: int) -> nn.Module:
    """The decoder's up-convolution: halves channels and doubles height and width."""
    if kind == "transpose2x2":
        return nn.ConvTranspose2d(deep, skip, 2, stride=2)
    if kind == "upsample3x3":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(deep, skip, 3, padding=1))
    raise ValueError(f"unknown up-convolution {kind!r}; use 'transpose2x2' or 'upsample3x3'")
