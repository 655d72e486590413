"""LinkNet (Chaurasia & Culurciello 2017) with a ResNet-18 encoder."""

from __future__ import annotations

import torch
from torch import nn

from landslide_pipeline.nn.blocks import (
    BasicBlock,
    ConvBNReLU,
    DeconvBNReLU,
    check_input_size,
    deconv,
    init_weights,
    scale_channels,
)

#: Output channels of the four ResNet-18 stages at width 1.
RESNET18_CHANNELS = (64, 128, 256, 512)
#: Stride of each ResNet-18 stage; the matching decoder block upsamples by it.
RESNET18_STRIDES = (1, 2, 2, 2)
#: BasicBlocks per ResNet-18 stage.
RESNET18_DEPTH = 2
#: Channels of the final block at width 1.
FINAL_CHANNELS = 32


def resnet_stage(in_channels: int, out_channels: int, stride: int, depth: int = RESNET18_DEPTH) -> nn.Sequential:
    """ResNet stage of ``depth`` BasicBlocks; the first one may downsample.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        stride: stride of the first block.
        depth: number of blocks.

    Returns:
        The stage.
    """
    blocks = [BasicBlock(in_channels, out_channels, stride)]
    blocks += [BasicBlock(out_channels, out_channels) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


class LinkNetDecoderBlock(nn.Sequential):
    """LinkNet decoder block(m, n): 1x1 conv m->m/4, 3x3 full conv m/4->m/4, 1x1 conv m/4->n.

    Args:
        in_channels: ``m``.
        out_channels: ``n``.
        stride: upsampling factor of the transposed conv (mirrors the encoder stage).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        mid_channels = max(1, in_channels // 4)
        super().__init__(
            ConvBNReLU(in_channels, mid_channels, kernel_size=1),
            DeconvBNReLU(mid_channels, mid_channels, kernel_size=3, stride=stride),
            ConvBNReLU(mid_channels, out_channels, kernel_size=1),
        )


class LinkNet(nn.Module):
    """LinkNet as described in study B, BN + ReLU after every conv but the last.

    Initial block: 7x7 conv stride 2 (64 ch) + 3x3 max pool stride 2. Encoder:
    ResNet-18 (4 stages of 2 BasicBlocks, 64/128/256/512 ch; stages 2-4 halve the
    size). Decoder block i mirrors encoder stage i (m = its output, n = its input
    channels) and the encoder stage's input is added to the decoder's output.
    Final block: 3x3 full conv stride 2 (64->32), 3x3 conv (32->32), 2x2 full conv
    stride 2 (32->num_classes).

    ResNet-18's first stage does not downsample, so the first decoder block's
    full conv has stride 1 (each decoder block undoes its encoder stage's stride);
    otherwise the skip additions would not align and the output would be 2H x 2W.
    The network downsamples by 32 in total.

    Parameter count at width 1, 3 bands, 2 classes: 11,533,442 (the LinkNet paper
    reports 11.5 M). Study B reports 13.4 M and no variant checked reproduces it:
    adding ResNet-18's ImageNet fc layer (+513,000) gives 12.05 M; 3x3 instead of
    1x1 decoder convs 12.58 M; both together 13.10 M; 4x4 decoder full convs (as in
    segmentation_models_pytorch) 11.69 M; Keras-style counting of BN moving
    statistics 11.55 M; a ResNet-34 encoder 21.64 M. The 1.9 M gap is therefore
    left unexplained; study B presumably used a different implementation.

    Args:
        in_channels: number of input bands.
        num_classes: number of output logit channels.
        width: channel multiplier; channels are ``max(1, round(c * width))``.
    """

    def __init__(self, in_channels: int, num_classes: int = 2, width: float = 1.0) -> None:
        super().__init__()
        channels = [scale_channels(c, width) for c in RESNET18_CHANNELS]
        stage_inputs = [channels[0], *channels[:-1]]
        self.stem = nn.Sequential(
            ConvBNReLU(in_channels, channels[0], kernel_size=7, stride=2),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.encoder = nn.ModuleList(
            resnet_stage(c_in, c_out, stride) for c_in, c_out, stride in zip(stage_inputs, channels, RESNET18_STRIDES)
        )
        # Stored deepest first, i.e. in execution order.
        self.decoder = nn.ModuleList(
            LinkNetDecoderBlock(c_out, c_in, stride)
            for c_in, c_out, stride in reversed(list(zip(stage_inputs, channels, RESNET18_STRIDES)))
        )
        final_channels = scale_channels(FINAL_CHANNELS, width)
        self.head = nn.Sequential(
            DeconvBNReLU(channels[0], final_channels, kernel_size=3, stride=2),
            ConvBNReLU(final_channels, final_channels),
            deconv(final_channels, num_classes, kernel_size=2, stride=2, bias=True),
        )
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
        x = self.stem(x)
        skips = []
        for stage in self.encoder:
            skips.append(x)
            x = stage(x)
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(x) + skip
        return self.head(x)
