import itertools
import subprocess
import sys

import pytest
import torch
from torch import nn

from landslide_pipeline.nn import create_model
from landslide_pipeline.training.performance import (
    SubsampledPointwiseConv2d,
    Timing,
    available_cores,
    configure_threads,
    conv_peak_flops,
    is_strided_pointwise,
    subsample_strided_pointwise_convs,
    time_calls,
    training_step_flops,
)


def test_conv_flops_are_two_per_multiply_accumulate():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    x, target = torch.zeros(2, 4, 8, 8), torch.zeros(2, 6, 8, 8)
    flops = training_step_flops(conv, x, target, criterion=nn.MSELoss())
    macs = 2 * 6 * 4 * 9 * 8 * 8
    assert flops.forward == 2 * macs
    # The input needs no gradient, so the backward is the weight gradient alone, as large as the forward.
    assert flops.backward == flops.forward
    two_layers = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.Conv2d(6, 6, 1, bias=False))
    flops = training_step_flops(two_layers, x, target, criterion=nn.MSELoss())
    second = 2 * 2 * 6 * 6 * 8 * 8
    assert flops.forward == 2 * macs + second
    # Backward: weight gradients of both layers and the input gradient of the second.
    assert flops.backward == 2 * macs + 2 * second
    assert conv_peak_flops(1.0, channels=6, size=8, batch=2) == 2 * 2 * 6 * 6 * 9 * 8 * 8


def test_step_flops_leave_the_model_untouched_and_match_a_real_count():
    model = create_model("unet", 3, 2, width=0.125)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 2, (2, 32, 32))
    flops = training_step_flops(model, x, y)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with counter:
        nn.functional.cross_entropy(model(x), y).backward()
    assert flops.total == counter.get_total_flops()
    assert 2.5 * flops.forward < flops.total <= 3 * flops.forward


def test_time_calls_counts_rounds_and_warmup():
    ticks = itertools.count(step=0.5)
    calls = []
    timing = time_calls(lambda: calls.append(1), repeats=3, calls=4, warmup=2, clock=lambda: next(ticks))
    assert len(calls) == 2 + 3 * 4
    assert timing.seconds == (0.125, 0.125, 0.125)


def test_time_calls_fits_rounds_to_the_target_time():
    clock = [0.0]

    def slow_call():
        clock[0] += 2.0

    timing = time_calls(slow_call, repeats=3, calls=5, warmup=0, target_seconds=4.0, clock=lambda: clock[0])
    assert timing.seconds == (2.0, 2.0, 2.0)
    assert clock[0] == 2.0 * (1 + 2 + 2)


def test_timing_statistics():
    timing = Timing((3.0, 1.0, 2.0))
    assert timing.median == 2.0
    assert timing.best == 1.0
    with pytest.raises(ValueError):
        time_calls(lambda: None, repeats=0)


def test_configure_threads_sets_and_reports():
    previous = torch.get_num_threads()
    try:
        assert configure_threads(1).intra_op == 1
        assert configure_threads(0).intra_op == available_cores()
        assert configure_threads(None).intra_op == available_cores()
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("channels_last", [False, True])
def test_subsampled_pointwise_conv_is_the_strided_conv(channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    strided = nn.Conv2d(16, 24, 1, stride=2, bias=True).to(memory_format=fmt)
    subsampled = nn.Conv2d(16, 24, 1, stride=2, bias=True).to(memory_format=fmt)
    subsampled.load_state_dict(strided.state_dict())
    assert subsample_strided_pointwise_convs(subsampled) == 1
    assert isinstance(subsampled, SubsampledPointwiseConv2d)
    # 16 input channels: outside the range of the oneDNN bug, so the reference can run.
    x = torch.randn(2, 16, 12, 12).to(memory_format=fmt)
    for layer in (strided, subsampled):
        layer(x).square().sum().backward()
    torch.testing.assert_close(subsampled(x), strided(x))
    torch.testing.assert_close(subsampled.weight.grad, strided.weight.grad)
    torch.testing.assert_close(subsampled.bias.grad, strided.bias.grad)


def test_only_plain_strided_pointwise_convs_are_changed():
    assert is_strided_pointwise(nn.Conv2d(2, 2, 1, stride=2))
    assert not is_strided_pointwise(nn.Conv2d(2, 2, 1))
    assert not is_strided_pointwise(nn.Conv2d(2, 2, 3, stride=2))
    assert not is_strided_pointwise(nn.Conv2d(2, 2, 1, stride=2, padding=1))
    assert not is_strided_pointwise(nn.ConvTranspose2d(2, 2, 1, stride=2))
    model = nn.Sequential(nn.Conv2d(3, 8, 1, stride=2), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 4, 1, stride=(2, 1)))
    keys = list(model.state_dict())
    x = torch.randn(1, 3, 12, 12)
    expected = model(x)
    assert subsample_strided_pointwise_convs(model) == 2
    assert list(model.state_dict()) == keys
    assert [type(layer) for layer in model] == [SubsampledPointwiseConv2d, nn.Conv2d, SubsampledPointwiseConv2d]
    torch.testing.assert_close(model(x), expected)
    # nn/ builds LinkNet's downsampling projection shortcuts subsampled already.
    linknet = create_model("linknet", 3, 2, width=0.125)
    assert any(isinstance(layer, SubsampledPointwiseConv2d) for layer in linknet.modules())
    assert subsample_strided_pointwise_convs(linknet) == 0
    assert subsample_strided_pointwise_convs(create_model("unet", 3, 2, width=0.125)) == 0


def test_subsampled_pointwise_conv_trains_where_onednn_crashes():
    # The shape that crashes oneDNN 3.12's strided 1x1 backward-weights kernel on AVX-512.
    conv = SubsampledPointwiseConv2d(8, 16, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 64, 64).to(memory_format=torch.channels_last)
    conv(x).sum().backward()
    expected = x[:, :, ::2, ::2].sum(dim=(0, 2, 3))
    torch.testing.assert_close(conv.weight.grad.view(16, 8), expected.expand(16, 8), rtol=1e-4, atol=1e-4)


def test_linknet_trains_channels_last_with_subsampled_projections():
    model = create_model("linknet", 3, 2, width=0.125).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (2, 64, 64))
    nn.functional.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_retain_freed_memory_in_a_child_process():
    code = ("import torch\n"
            "from landslide_pipeline.training.performance import retain_freed_memory\n"
            "assert retain_freed_memory()\n"
            "for _ in range(3):\n"
            "    torch.ones(64 * 2**20 // 4).sum()\n")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
