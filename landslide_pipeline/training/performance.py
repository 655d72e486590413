"""CPU performance helpers: thread settings, bf16 support, FLOP counting and step timing.

Helpers for the training benchmark (``bench/train.py``) and the CPU training profile. FLOPs are
counted as 2 x multiply-accumulates of the convolutions and matrix products (what
:class:`torch.utils.flop_counter.FlopCounterMode` counts); BatchNorm, ReLU, pooling, the loss and
the optimiser are not counted. :func:`subsample_strided_pointwise_convs` rewrites a model in
place, without changing its function, around a oneDNN crash in torch 2.13.0.
"""

from __future__ import annotations

import copy
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from landslide_pipeline.nn.blocks import SubsampledPointwiseConv2d


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadSettings:
    """Torch's intra-op and inter-op thread counts."""

    intra_op: int
    inter_op: int


def configure_threads(intra_op: int | None = None, inter_op: int | None = None) -> ThreadSettings:
    """Set torch's thread counts and return what is in effect afterwards.

    One intra-op thread per available core is torch's default too; an explicit count matters
    when several training processes share the cores (give each ``cores // processes``): OpenMP
    threads that outnumber the free cores wait on each other at every barrier. Measured on 2
    cores (U-Net width 0.125, 256 x 256, batch 8): one process with 2 threads 16.3 images/s;
    two such processes at once 2.3 + 2.3 to 4.8 + 4.7; two processes with 1 thread each
    10.7 + 11.9. The inter-op pool can only be sized before its first use; a later request is
    ignored.

    Args:
        intra_op: threads per operator; ``None`` keeps the current count, 0 means one per core.
        inter_op: threads running independent operators; ``None`` keeps the current count.

    Returns:
        The thread counts in effect.
    """
    if intra_op is not None:
        torch.set_num_threads(intra_op if intra_op > 0 else available_cores())
    if inter_op is not None and inter_op > 0 and inter_op != torch.get_num_interop_threads():
        try:
            torch.set_num_interop_threads(inter_op)
        except RuntimeError:
            pass  # the pool is already running
    return ThreadSettings(torch.get_num_threads(), torch.get_num_interop_threads())


def cpu_supports_bf16() -> bool:
    """Whether the CPU has native bfloat16 dot products (AVX512-BF16 or AMX).

    Only then is bf16 autocast a speed-up: measured here, it doubles U-Net training speed with
    AVX512-BF16, and with the bf16 instructions masked (``ONEDNN_MAX_CPU_ISA=AVX512_CORE``) it
    makes training 1.8x slower than fp32.
    """
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # pragma: no cover - private helpers of torch 2.x, absent elsewhere
        pass
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def retain_freed_memory() -> bool:
    """Make glibc malloc keep freed memory for reuse instead of unmapping it (Linux, glibc).

    By default glibc serves every allocation above its mmap threshold (at most 32 MiB) with a
    fresh ``mmap`` and unmaps it on free, so each training step faults in every large activation
    page by page again: a 3x3 conv with a 32 MiB output runs at ~165 instead of ~220 GFLOP/s
    here, and U-Net width 0.5 at batch 8 spends ~1 s a step in the kernel. This turns ``mmap``
    allocation off (``M_MMAP_MAX=0``) and raises the trim threshold to 2 GiB, the effect of
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`` in the environment, but callable
    after start-up. The process then keeps its peak heap until it exits: meant for a process
    that trains, not for a long-lived server.

    Returns:
        True if glibc accepted both settings.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


@dataclass(frozen=True)
class StepFlops:
    """FLOPs (2 x MACs) of one training step, split into forward and backward."""

    forward: int
    backward: int

    @property
    def total(self) -> int:
        """Forward plus backward FLOPs (the optimiser step adds none that are counted)."""
        return self.forward + self.backward


def training_step_flops(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                        criterion: nn.Module | None = None) -> StepFlops:
    """Count the forward and backward FLOPs of one training step, without computing anything.

    A copy of the model runs on the ``meta`` device (shapes only), so counting a large model
    costs milliseconds and leaves ``model`` untouched.

    Args:
        model: the model (any device); it is deep-copied, not modified.
        x: an input batch, or a tensor of its shape.
        target: a target batch, or a tensor of its shape and dtype.
        criterion: the loss; cross-entropy when ``None``.

    Returns:
        The forward and backward FLOPs for that batch.
    """
    criterion = criterion or nn.CrossEntropyLoss()
    meta_model = copy.deepcopy(model).to("meta").train()
    meta_x = torch.empty_like(x, device="meta")
    meta_target = torch.empty_like(target, device="meta")
    with FlopCounterMode(display=False) as forward_counter:
        loss = criterion(meta_model(meta_x), meta_target)
    with FlopCounterMode(display=False) as backward_counter:
        loss.backward()
    return StepFlops(forward_counter.get_total_flops(), backward_counter.get_total_flops())


@dataclass(frozen=True)
class Timing:
    """Seconds per call of a repeatedly timed function."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        """The fastest repeat: the least disturbed by other processes on shared cores."""
        return min(self.seconds)


def time_calls(fn: Callable[[], object], repeats: int = 3, calls: int = 1, warmup: int = 1,
               target_seconds: float | None = None,
               clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Time ``fn`` in ``repeats`` rounds of ``calls`` calls each, after ``warmup`` calls.

    Args:
        fn: the function to time (e.g. one training step).
        repeats: rounds; each gives one seconds-per-call figure.
        calls: calls per round (an upper bound when ``target_seconds`` is set).
        warmup: untimed calls first (allocations, kernel selection, optimiser state).
        target_seconds: if set, the first round is one call and later rounds hold as many
            calls (1 to ``calls``) as fit in about this many seconds, so slow functions are
            timed with fewer calls.
        clock: the clock to read.

    Returns:
        Seconds per call of each round.
    """
    if repeats < 1 or calls < 1:
        raise ValueError(f"repeats and calls must be >= 1, got {repeats} and {calls}")
    for _ in range(warmup):
        fn()
    seconds = []
    per_round = 1 if target_seconds is not None else calls
    for _ in range(repeats):
        start = clock()
        for _ in range(per_round):
            fn()
        seconds.append((clock() - start) / per_round)
        if target_seconds is not None:
            per_round = max(1, min(calls, round(target_seconds / max(seconds[0], 1e-9))))
    return Timing(tuple(seconds))


def conv_peak_flops(seconds_per_call: float, channels: int = 64, size: int = 128, batch: int = 8,
                    kernel: int = 3) -> float:
    """FLOP/s (2 x MACs) of a same-padded square convolution with equal in and out channels.

    Args:
        seconds_per_call: measured time of one forward call.
        channels: input and output channels.
        size: height and width of the input (and output).
        batch: batch size.
        kernel: kernel height and width.

    Returns:
        FLOPs per second.
    """
    return 2 * batch * channels * channels * kernel * kernel * size * size / seconds_per_call


def time_conv(channels: int = 64, size: int = 128, batch: int = 8, channels_last: bool = True,
              dtype: torch.dtype = torch.float32, repeats: int = 5, calls: int = 5) -> Timing:
    """Time the forward pass of a 3x3 convolution (no bias, padding 1), the CPU's practical peak.

    Args:
        channels: input and output channels.
        size: height and width.
        batch: batch size.
        channels_last: NHWC memory format (else NCHW).
        dtype: float32 or bfloat16.
        repeats: timed rounds.
        calls: calls per round.

    Returns:
        Seconds per forward call.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    # nn.Module.to takes memory_format (documented), but torch's typed overloads of it omit the argument.
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    conv = conv.to(dtype=dtype, memory_format=fmt)  # type: ignore[call-overload]
    x = torch.randn(batch, channels, size, size, dtype=dtype).to(memory_format=fmt)
    with torch.inference_mode():
        return time_calls(lambda: conv(x), repeats=repeats, calls=calls, warmup=2)


def is_strided_pointwise(layer: nn.Module) -> bool:
    """Whether ``layer`` is a plain 1x1 ``nn.Conv2d`` with a stride above 1 and no padding."""
    return (type(layer) is nn.Conv2d and layer.kernel_size == (1, 1) and layer.stride != (1, 1)
            and layer.padding == (0, 0) and layer.dilation == (1, 1) and layer.groups == 1)


def subsample_strided_pointwise_convs(model: nn.Module) -> int:
    """Turn every strided 1x1 convolution of ``model`` into a :class:`SubsampledPointwiseConv2d`.

    The change is in place and exact (same outputs and gradients up to float rounding).

    Args:
        model: any module.

    Returns:
        The number of layers changed.
    """
    layers = [layer for layer in model.modules() if is_strided_pointwise(layer)]
    for layer in layers:
        layer.__class__ = SubsampledPointwiseConv2d
    return len(layers)


#: Backward of the smallest convolution known to trigger the oneDNN bug.
_POINTWISE_STRIDE_PROBE = """
import torch
conv = torch.nn.Conv2d(8, 16, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
x = torch.randn(2, 8, 64, 64).to(memory_format=torch.channels_last)
for _ in range(3):
    conv(x).sum().backward()
"""


def strided_pointwise_backward_crashes(timeout: float = 120.0) -> bool:
    """Whether a channels-last 8 -> 16 channel 1x1 stride-2 convolution's backward kills a process.

    Runs the probe in a child Python, so a crash cannot take this process with it.

    Args:
        timeout: seconds before a hanging probe counts as failed.

    Returns:
        True when the probe died or hung (this torch and CPU have the bug).
    """
    try:
        probe = subprocess.run([sys.executable, "-c", _POINTWISE_STRIDE_PROBE], capture_output=True,
                               timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return True
    return probe.returncode != 0


__all__ = [
    "StepFlops",
    "SubsampledPointwiseConv2d",
    "ThreadSettings",
    "Timing",
    "available_cores",
    "configure_threads",
    "conv_peak_flops",
    "cpu_supports_bf16",
    "is_strided_pointwise",
    "strided_pointwise_backward_crashes",
    "subsample_strided_pointwise_convs",
    "time_calls",
    "time_conv",
    "training_step_flops",
]
