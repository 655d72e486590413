"""Plain-torch segmentation architectures behind a name registry."""

from landslide_pipeline.nn.fcn import FCN8s
from landslide_pipeline.nn.linknet import LinkNet
from landslide_pipeline.nn.registry import ARCHITECTURES, available_architectures, count_parameters, create_model
from landslide_pipeline.nn.unet import ResUNet, UNet, UNetUpsampleConv

__all__ = [
    "ARCHITECTURES",
    "FCN8s",
    "LinkNet",
    "ResUNet",
    "UNet",
    "UNetUpsampleConv",
    "available_architectures",
    "count_parameters",
    "create_model",
]
