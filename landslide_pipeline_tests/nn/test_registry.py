"""Tests of the architecture registry and of parameter counts."""

from __future__ import annotations

import pytest
from torch import nn

from landslide_pipeline.nn import (
    ARCHITECTURES,
    FCN8s,
    LinkNet,
    ResUNet,
    UNet,
    UNetUpsampleConv,
    available_architectures,
    count_parameters,
    create_model,
)
from landslide_pipeline.nn.blocks import ResidualDoubleConv

# Exact counts for 3 bands and 2 classes, pinned so any architectural change is noticed.
FULL_WIDTH_COUNTS = {
    "unet": 31_037_698,
    "unet-3x3": 34_519_298,
    "resunet": 32_436_418,
    "fcn": 20_494_918,
    "linknet": 11_533_442,
}
EIGHTH_WIDTH_COUNTS = {
    "unet": 486_562,
    "unet-3x3": 540_962,
    "resunet": 509_082,
    "fcn": 323_326,
    "linknet": 182_550,
}


def test_registry_lists_the_four_architectures_and_study_bs_unet() -> None:
    assert available_architectures() == ["fcn", "linknet", "resunet", "unet", "unet-3x3"]
    assert ARCHITECTURES == {"unet": UNet, "unet-3x3": UNetUpsampleConv, "resunet": ResUNet, "fcn": FCN8s,
                             "linknet": LinkNet}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_create_model_builds_the_registered_class(name: str) -> None:
    model = create_model(name, in_channels=4, num_classes=3, width=0.125)
    assert type(model) is ARCHITECTURES[name]
    assert model.training


def test_create_model_name_is_case_insensitive() -> None:
    assert isinstance(create_model(" UNet ", 3, width=0.125), UNet)


def test_unknown_name_raises_listing_known_names() -> None:
    with pytest.raises(ValueError, match="segformer") as excinfo:
        create_model("segformer", 3)
    for name in ARCHITECTURES:
        assert name in str(excinfo.value)


@pytest.mark.parametrize(
    ("in_channels", "num_classes", "width"), [(0, 2, 1.0), (3, 0, 1.0), (3, 2, 0.0), (3, 2, -0.5)]
)
def test_invalid_sizes_raise(in_channels: int, num_classes: int, width: float) -> None:
    with pytest.raises(ValueError):
        create_model("unet", in_channels, num_classes, width)


def test_count_parameters_counts_weights_and_biases() -> None:
    assert count_parameters(nn.Linear(10, 3)) == 33


def test_width_sets_channels_to_rounded_multiple() -> None:
    model = create_model("unet", 3, width=0.125)
    assert [level[0][0].out_channels for level in model.encoder] == [8, 16, 32, 64, 128]


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_full_width_parameter_count_is_pinned(name: str) -> None:
    assert count_parameters(create_model(name, 3, num_classes=2, width=1.0)) == FULL_WIDTH_COUNTS[name]


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_eighth_width_parameter_count_is_pinned(name: str) -> None:
    assert count_parameters(create_model(name, 3, num_classes=2, width=0.125)) == EIGHTH_WIDTH_COUNTS[name]


def test_full_width_counts_match_the_references() -> None:
    # Classic padded U-Net with BN ~31.0 M; LinkNet paper 11.5 M.
    assert FULL_WIDTH_COUNTS["unet"] == pytest.approx(31.0e6, rel=0.01)
    assert FULL_WIDTH_COUNTS["linknet"] == pytest.approx(11.5e6, rel=0.01)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_parameter_count_scales_with_width_squared(name: str) -> None:
    quarter = count_parameters(create_model(name, 3, width=0.25))
    half = count_parameters(create_model(name, 3, width=0.5))
    # Not exactly 4: the first conv and the head scale linearly with width.
    assert half / quarter == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("width", [0.125, 1.0])
def test_resunet_adds_only_projection_parameters(width: float) -> None:
    unet = create_model("unet", 3, width=width)
    resunet = create_model("resunet", 3, width=width)
    blocks = [m for m in resunet.modules() if isinstance(m, ResidualDoubleConv)]
    projections = [block.shortcut for block in blocks if not isinstance(block.shortcut, nn.Identity)]
    assert len(blocks) == 9
    # Every U-Net level changes its channel count, so every block needs a projection.
    assert len(projections) == 9
    surplus = count_parameters(resunet) - count_parameters(unet)
    assert surplus > 0
    assert surplus == sum(count_parameters(projection) for projection in projections)
