"""FCN-8s (Long, Shelhamer & Darrell 2015) with a BatchNorm VGG-16 encoder."""

from __future__ import annotations

import torch
from torch import nn

from landslide_pipeline.nn.blocks import (
    ConvBNReLU,
    bilinear_kernel_,
    check_input_size,
    deconv,
    init_weights,
    scale_channels,
)

#: (channels, number of 3x3 convs) per VGG-16 stage at width 1.
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
#: Channels of the convolutionalised fc6/fc7 at width 1 (4096 in the original).
FC_CHANNELS = 1024


def vgg_stage(in_channels: int, out_channels: int, depth: int) -> nn.Sequential:
    """VGG stage: ``depth`` 3x3 ConvBNReLU layers followed by 2x2 max pooling.

    Args:
        in_channels: number of input channels.
        out_channels: number of channels of every convolution.
        depth: number of convolutions.

    Returns:
        The stage, halving height and width.
    """
    convs = [ConvBNReLU(in_channels if i == 0 else out_channels, out_channels) for i in range(depth)]
    return nn.Sequential(*convs, nn.MaxPool2d(2, stride=2))


class FCN8s(nn.Module):
    """FCN-8s: VGG-16 encoder, score layers at 1/32, 1/16, 1/8 fused by addition.

    Encoder: five VGG-16 stages (2, 2, 3, 3, 3 convs of 64, 128, 256, 512, 512
    channels), each ending in 2x2 max pooling. fc6/fc7 are a 3x3 conv and a 1x1
    conv with 1024 channels. 1x1 score convs at 1/32 (after fc7), 1/16 (pool4) and
    1/8 (pool3); the 1/32 scores are upsampled x2 with a transposed conv and added
    to the pool4 scores, the sum upsampled x2 and added to the pool3 scores, and
    the result upsampled x8 to the input size.

    Deviations from the original, chosen to train from scratch on small tiles:

    * BatchNorm after every encoder conv (the original VGG-16 has none, and relies
      on ImageNet weights) and no dropout after fc6/fc7 (BN already regularises
      and dropout before BN shifts its statistics between train and eval).
    * fc6 is a 3x3 conv and fc7 a 1x1 conv with 1024 channels instead of 7x7 and
      1x1 convs with 4096 channels (~5.8 M instead of ~120 M parameters), so the
      fc6 receptive field no longer needs a 224-pixel input.
    * Padding 1 everywhere instead of the original 100-pixel first-layer padding
      and crop layers, so feature maps align exactly when H, W are multiples of 32.
    * All three upsampling layers are learnable transposed convs (4x4/2, 4x4/2,
      16x16/8) initialised to bilinear interpolation; the original froze the x8 one.
    * Score layers have no pool3/pool4 scaling (the "at-once" variant's 1e-4/1e-2).

    Parameter count at width 1, 3 bands, 2 classes: 20,494,918.

    Args:
        in_channels: number of input bands.
        num_classes: number of output logit channels.
        width: channel multiplier; channels are ``max(1, round(c * width))``.
    """

    def __init__(self, in_channels: int, num_classes: int = 2, width: float = 1.0) -> None:
        super().__init__()
        channels = [scale_channels(c, width) for c, _ in VGG16_STAGES]
        self.stages = nn.ModuleList(
            vgg_stage(c_in, c_out, depth)
            for c_in, c_out, (_, depth) in zip([in_channels, *channels[:-1]], channels, VGG16_STAGES)
        )
        fc_channels = scale_channels(FC_CHANNELS, width)
        self.fc = nn.Sequential(
            ConvBNReLU(channels[-1], fc_channels, kernel_size=3),
            ConvBNReLU(fc_channels, fc_channels, kernel_size=1),
        )
        self.score32 = nn.Conv2d(fc_channels, num_classes, 1)
        self.score16 = nn.Conv2d(channels[3], num_classes, 1)
        self.score8 = nn.Conv2d(channels[2], num_classes, 1)
        self.up32 = deconv(num_classes, num_classes, 4, stride=2)
        self.up16 = deconv(num_classes, num_classes, 4, stride=2)
        self.up8 = deconv(num_classes, num_classes, 16, stride=8)
        init_weights(self)
        for layer in (self.up32, self.up16, self.up8):
            bilinear_kernel_(layer)

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
        pooled = []
        for stage in self.stages:
            x = stage(x)
            pooled.append(x)
        pool3, pool4 = pooled[2], pooled[3]
        x = self.up32(self.score32(self.fc(x)))
        x = self.up16(x + self.score16(pool4))
        return self.up8(x + self.score8(pool3))
