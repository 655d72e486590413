"""Behavioural tests of every architecture at a CPU-friendly width."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from landslide_pipeline.nn import ARCHITECTURES, create_model

NAMES = sorted(ARCHITECTURES)
WIDTH = 0.125


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("in_channels", [3, 4, 14])
@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name: str, in_channels: int) -> None:
    model = create_model(name, in_channels, num_classes=3, width=WIDTH)
    logits = model(torch.randn(2, in_channels, 64, 64))
    assert logits.shape == (2, 3, 64, 64)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_non_square_multiple_of_32_input(name: str) -> None:
    model = create_model(name, 3, width=WIDTH).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 96)).shape == (1, 2, 32, 96)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_first_conv(name: str) -> None:
    model = create_model(name, 4, width=WIDTH)
    model(torch.randn(2, 4, 64, 64)).square().mean().backward()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 4
    assert first_conv.weight.grad is not None
    assert torch.isfinite(first_conv.weight.grad).all()
    assert first_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [(48, 64), (64, 80), (100, 100)])
@pytest.mark.parametrize("name", NAMES)
def test_size_not_multiple_of_32_raises(name: str, size: tuple[int, int]) -> None:
    model = create_model(name, 3, width=WIDTH)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, *size))


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_matches_contiguous(name: str) -> None:
    model = create_model(name, 4, width=WIDTH).eval()
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        actual = model(x.to(memory_format=torch.channels_last))
    # Untrained logits reach ~100 and float32 kernels sum in a different order per
    # layout, so the 1e-5 tolerance is relative to the logit scale.
    scale = max(1.0, expected.abs().max().item())
    assert (actual - expected).abs().max().item() <= 1e-5 * scale


@pytest.mark.parametrize("name", NAMES)
def test_torch_export_in_eval_mode(name: str) -> None:
    model = create_model(name, 4, width=WIDTH).eval()
    x = torch.randn(1, 4, 64, 64)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        expected = model(x)
    actual = exported.module()(x)
    assert actual.shape == (1, 2, 64, 64)
    scale = max(1.0, expected.abs().max().item())
    assert (actual - expected).abs().max().item() <= 1e-5 * scale


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cuda(name: str) -> None:
    model = create_model(name, 4, width=WIDTH).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(2, 4, 64, 64, device="cuda").to(memory_format=torch.channels_last)
    logits = model(x)
    logits.mean().backward()
    assert logits.shape == (2, 2, 64, 64)
    assert logits.device.type == "cuda"


def test_unet_overfits_a_bright_square() -> None:
    image = 0.1 * torch.randn(1, 3, 64, 64)
    mask = torch.zeros(1, 64, 64, dtype=torch.long)
    mask[:, 16:40, 24:48] = 1
    image[:, :, 16:40, 24:48] += 1.0
    model = create_model("unet", 3, width=WIDTH)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(image), mask).backward()
        optimizer.step()
    with torch.no_grad():
        predicted = model.eval()(image).argmax(dim=1)
    accuracy = (predicted == mask).float().mean().item()
    intersection = ((predicted == 1) & (mask == 1)).sum().item()
    union = ((predicted == 1) | (mask == 1)).sum().item()
    # Background alone scores 0.86, so also require the square itself to be found.
    assert accuracy > 0.9
    assert intersection / union > 0.8


def test_linknet_trains_at_width_0125_on_256_pixel_tiles_in_a_child_process():
    # Regression: oneDNN 3.12's strided 1x1 backward-weights kernel corrupted the heap here and
    # killed the process (uxlfoundation/oneDNN#6035); run it in a child so a crash fails the test.
    code = (
        "import torch\n"
        "from landslide_pipeline.nn import create_model\n"
        "model = create_model('linknet', 3, 2, width=0.125).to(memory_format=torch.channels_last)\n"
        "x = torch.randn(4, 3, 256, 256).to(memory_format=torch.channels_last)\n"
        "y = torch.randint(0, 2, (4, 256, 256))\n"
        "for _ in range(3):\n"
        "    torch.nn.functional.cross_entropy(model(x), y).backward()\n"
        "print('ok')\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert child.returncode == 0 and child.stdout.strip() == "ok", child.stderr[-2000:]


def test_study_b_unet_variant_has_its_34_5_million_parameters():
    from landslide_pipeline.nn.registry import count_parameters

    assert count_parameters(create_model("unet-3x3", 3, 2, width=1.0)) == 34_519_298
    assert count_parameters(create_model("unet", 3, 2, width=1.0)) == 31_037_698
    x = torch.zeros(1, 3, 64, 64)
    assert create_model("unet-3x3", 3, 2, width=0.125)(x).shape == (1, 2, 64, 64)


def test_linknet_adds_each_encoder_output_to_the_decoder_output_of_its_level():
    """LinkNet's skip links are additions (not concatenations as in U-Net): checked by hooks."""
    model = create_model("linknet", 3, 2, width=0.125).eval()
    seen = {}
    for i, stage in enumerate(model.encoder):
        stage.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(("enc_in", i), inp[0]))
    for j, block in enumerate(model.decoder):
        block.register_forward_hook(lambda m, inp, out, j=j: seen.__setitem__(("dec_out", j), out))
        block.register_forward_hook(lambda m, inp, out, j=j: seen.__setitem__(("dec_in", j), inp[0]))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    n = len(model.encoder)
    for j in range(n - 1):
        # The decoder block after level j receives the previous block's output plus that level's skip.
        expected = seen[("dec_out", j)] + seen[("enc_in", n - 1 - j)]
        assert torch.allclose(seen[("dec_in", j + 1)], expected)
