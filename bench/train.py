"""CPU training speed of every architecture beside the measured peak of a 3x3 convolution.

Usage: ``python bench/train.py`` (about 4 minutes on 2 idle cores, up to about 8 when other
processes share them). Flags: ``--archs``, ``--size``, ``--widths``, ``--batch``, ``--steps``,
``--repeats``, ``--batches`` (U-Net batch sweep), ``--threads``, ``--extras`` (U-Net variants:
nchw, bf16 autocast, torch.compile), ``--retain-memory`` (glibc keeps freed memory, see
``training.performance.retain_freed_memory``), ``--small-*`` (the 128 x 128 comparison with the
peer library).

What it measures, in one process so that every figure sees the same machine:

* peak: forward of a 3x3 convolution, 64 -> 64 channels, 128 x 128, batch 8, fp32,
  channels-last (NCHW and bf16 too, for information);
* one training step as ``training/loop.py`` runs it: the batch from NCHW float32 numpy to a
  channels-last tensor, forward, cross-entropy, ``zero_grad``, backward, Adam step; model and
  input channels-last unless the row says ``nchw``;
* FLOPs per step, counted with ``torch.utils.flop_counter.FlopCounterMode`` on a meta-device
  copy of the model: the convolutions (and matrix products) of forward and backward, as
  2 x multiply-accumulates, the convention of the peak too. BatchNorm, ReLU, pooling, the loss
  and Adam are work that is not counted, so "achieved GFLOP/s" understates what the CPU does.

Timing: every case is built and warmed up (one step) first; then ``--repeats`` rounds, each
running every case for about a second (1 to ``--steps`` steps) plus one peak probe. Interleaving
spreads the disturbance from other processes on shared cores over all cases alike. The table
shows the median and the best round per case. "% peak" is the median round over the median peak
probe (measured alternately, so under the same conditions); "% best" is best round over best
probe. The peak convolution's 32 MiB output is just above glibc malloc's largest mmap threshold,
so by default each call maps and page-faults it afresh (~170 GFLOP/s here); once the models have
left large free blocks in the heap, a probe may reuse one and read ~220 GFLOP/s, the kernel's own
speed, which the batch-4 line at the end shows. With ``--retain-memory`` every figure is free of
these page faults. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

# Lets the script run from a checkout where the package is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landslide_pipeline.nn import available_architectures, count_parameters, create_model  # noqa: E402
from landslide_pipeline.training.performance import (  # noqa: E402
    SubsampledPointwiseConv2d,
    configure_threads,
    conv_peak_flops,
    cpu_supports_bf16,
    retain_freed_memory,
    strided_pointwise_backward_crashes,
    subsample_strided_pointwise_convs,
    time_calls,
    time_conv,
    training_step_flops,
)

NUM_CLASSES = 2
#: Seconds of steps per case and round (at least one step).
ROUND_SECONDS = 1.0
#: Forward calls of the reference convolution per peak probe (about 0.5 s).
PEAK_CALLS = 8
#: segmentation_models_pytorch 0.6.0 with ResNet-18 encoders, 128 x 128, batch 16, 2 threads,
#: channels-last (shared/anchors.md): training images/s.
ANCHORS = {"unet": 14.4, "linknet": 25.6}
VARIANTS = ("channels_last", "nchw", "bf16", "compile", "compile+bf16")


@dataclass
class Case:
    """One training configuration and its measurements."""

    section: str
    arch: str
    width: float
    size: int
    batch: int
    variant: str = "channels_last"
    threads: int = 0
    patched: int = 0
    parameters: int = 0
    forward_flops: int = 0
    step_flops: int = 0
    warmup_seconds: float = 0.0
    steps_per_round: int = 1
    seconds: list[float] = field(default_factory=list)
    error: str = ""
    step: Callable[[], None] | None = None

    def per_step(self, which: str) -> float:
        return min(self.seconds) if which == "best" else statistics.median(self.seconds)

    def images_per_second(self, which: str) -> float:
        return self.batch / self.per_step(which)

    def gflops(self, which: str) -> float:
        return self.step_flops / self.per_step(which) / 1e9

    @property
    def label(self) -> str:
        return (f"{self.arch:<8} {self.width:>6g} {self.size:>4} {self.batch:>5} "
                f"{self.variant + '*' * bool(self.patched):<14}")


def training_step(arch: str, width: float, size: int, batch: int, bands: int, variant: str,
                  subsample_pointwise: bool = False, seed: int = 0,
                  ) -> tuple[Callable[[], None], nn.Module, torch.Tensor, torch.Tensor]:
    """A closure running one training step the way ``training/loop.py`` does.

    ``variant``: ``channels_last`` (the loop's), ``nchw``, ``bf16`` (autocast), ``compile``
    (``torch.compile`` of the model, inductor) or ``compile+bf16``. ``subsample_pointwise``
    computes strided 1x1 convolutions as subsampling + stride 1 (the same function), around
    the oneDNN bug that crashes their channels-last backward.

    Returns:
        The step, the model, and an input and a target batch (for counting FLOPs).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fmt = torch.contiguous_format if variant == "nchw" else torch.channels_last
    model = create_model(arch, bands, NUM_CLASSES, width=width).to(memory_format=fmt).train()
    if subsample_pointwise:
        subsample_strided_pointwise_convs(model)
    x = rng.standard_normal((batch, bands, size, size), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, (batch, size, size), dtype=np.uint8)
    criterion = nn.CrossEntropyLoss()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if variant.startswith("compile") else model
    autocast = variant.endswith("bf16")

    def step() -> None:
        inputs = torch.from_numpy(x).to(memory_format=fmt)
        target = torch.from_numpy(y).long()
        with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext():
            loss = criterion(forward(inputs), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return step, model, torch.from_numpy(x).to(memory_format=fmt), torch.from_numpy(y).long()


def with_threads(threads: int, fn: Callable[[], object]) -> None:
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        fn()
    finally:
        torch.set_num_threads(previous)


def prepare(case: Case, bands: int, max_steps: int, subsample_pointwise: bool) -> None:
    """Build the case's model and step, count its FLOPs and time one warm-up step."""

    def build() -> None:
        step, model, x, y = training_step(case.arch, case.width, case.size, case.batch, bands, case.variant,
                                          subsample_pointwise)
        case.patched = sum(isinstance(m, SubsampledPointwiseConv2d) for m in model.modules())
        case.parameters = count_parameters(model)
        flops = training_step_flops(model, x, y)
        case.forward_flops, case.step_flops = flops.forward, flops.total
        start = time.perf_counter()
        step()
        case.warmup_seconds = time.perf_counter() - start
        case.step = step

    try:
        with_threads(case.threads, build)
    except Exception as error:  # noqa: BLE001 - one failing case must not end the bench
        case.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        return
    # The warm-up step of a compiled model includes compiling: size rounds on one more step.
    if case.variant.startswith("compile"):
        start = time.perf_counter()
        with_threads(case.threads, case.step)
        estimate = time.perf_counter() - start
    else:
        estimate = case.warmup_seconds
    case.steps_per_round = max(1, min(max_steps, round(ROUND_SECONDS / max(estimate, 1e-6))))


def run_round(case: Case) -> None:
    if case.error or case.step is None:
        return

    def timed() -> None:
        timing = time_calls(case.step, repeats=1, calls=case.steps_per_round, warmup=0)
        case.seconds.append(timing.seconds[0])

    try:
        with_threads(case.threads, timed)
    except Exception as error:  # noqa: BLE001
        case.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"


def floats(text: str) -> list[float]:
    return [float(item) for item in text.split(",") if item]


def ints(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item]


def names(text: str) -> list[str]:
    chosen = [item.strip().lower() for item in text.split(",") if item.strip()]
    unknown = sorted(set(chosen) - set(available_architectures()))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown architectures {unknown}; known: {available_architectures()}")
    return chosen


def variants(text: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; known: {VARIANTS}")
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--archs", type=names, default="unet,resunet,fcn,linknet")
    parser.add_argument("--size", type=int, default=256, help="tile height and width")
    parser.add_argument("--widths", type=floats, default="0.125,0.5",
                        help="width multipliers (0.125: the cpu profile)")
    parser.add_argument("--batch", type=int, default=8, help="batch of the architecture rows")
    parser.add_argument("--batches", type=ints, default="2,4,16",
                        help="extra U-Net batches: all at the first width, those below --batch at the others")
    parser.add_argument("--steps", type=int, default=8, help="most steps per case and round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds")
    parser.add_argument("--bands", type=int, default=3, help="input bands")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads; 0: one per core")
    parser.add_argument("--retain-memory", action="store_true",
                        help="keep freed memory in the process (glibc mallopt) instead of re-faulting it each step")
    parser.add_argument("--extras", type=variants, default="nchw,bf16",
                        help=f"U-Net variants at every width, of {', '.join(VARIANTS[1:])}")
    parser.add_argument("--no-threads-check", dest="threads_check", action="store_false",
                        help="skip the U-Net 1-thread row")
    parser.add_argument("--small-size", type=int, default=128, help="size of the peer-library comparison")
    parser.add_argument("--small-archs", type=names, default="unet,linknet")
    parser.add_argument("--small-widths", type=floats, default="0.125,1.0")
    parser.add_argument("--small-batch", type=int, default=16)
    return parser.parse_args(argv)


def plan(args: argparse.Namespace, threads: int) -> list[Case]:
    cases: list[Case] = []
    for index, width in enumerate(args.widths):
        for arch in args.archs:
            cases.append(Case("arch", arch, width, args.size, args.batch))
        if "unet" not in args.archs:
            continue
        # Larger batches at larger widths take minutes a step: only the smaller ones there.
        batches = [b for b in args.batches if b != args.batch and (index == 0 or b < args.batch)]
        cases += [Case("batch", "unet", width, args.size, b) for b in batches]
        cases += [Case("variant", "unet", width, args.size, args.batch, v) for v in args.extras]
        if index == 0 and args.threads_check and threads > 1:
            cases.append(Case("threads", "unet", width, args.size, args.batch, threads=1))
    for width in args.small_widths:
        cases += [Case("small", arch, width, args.small_size, args.small_batch) for arch in args.small_archs]
    return cases


def peak_gflops(seconds: list[float], which: str) -> float:
    return conv_peak_flops(min(seconds) if which == "best" else statistics.median(seconds)) / 1e9


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    retained = retain_freed_memory() if args.retain_memory else False
    threads = configure_threads(args.threads)
    bf16 = cpu_supports_bf16()
    print(f"torch {torch.__version__}, {platform.machine()}, {threads.intra_op} intra-op / {threads.inter_op} "
          f"inter-op threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"bf16 dot products {'yes' if bf16 else 'no'}, freed memory retained {'yes' if retained else 'no'}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    # A crash in one case would end the run, so look for the known oneDNN one in a child first.
    workaround = strided_pointwise_backward_crashes()
    print("strided 1x1 conv, channels-last backward crashes (oneDNN issue 6035): "
          + ("yes; strided 1x1 convs run as subsample + stride-1 conv (same function), rows marked *"
             if workaround else "no"), flush=True)

    peaks = {"fp32 channels_last": list(time_conv(calls=PEAK_CALLS).seconds),
             "fp32 nchw": list(time_conv(channels_last=False, calls=PEAK_CALLS).seconds)}
    if bf16:
        peaks["bf16 channels_last"] = list(time_conv(dtype=torch.bfloat16, calls=PEAK_CALLS).seconds)
    for label, seconds in peaks.items():
        print(f"peak 3x3 conv 64ch 128x128 b8 {label:<18}: median {peak_gflops(seconds, 'median'):6.1f}, "
              f"best {peak_gflops(seconds, 'best'):6.1f} GFLOP/s", flush=True)

    cases = plan(args, threads.intra_op)
    print(f"\npreparing {len(cases)} cases (model, FLOP count, one warm-up step)", flush=True)
    for case in cases:
        prepare(case, args.bands, args.steps, workaround)
        state = case.error or (f"{case.step_flops / 1e9:8.1f} GFLOP/step, warm-up {case.warmup_seconds:5.1f} s, "
                               f"{case.steps_per_round} step(s) a round")
        print(f"  {case.section:<8} {case.label} {state}", flush=True)
    for round_ in range(args.repeats):
        peaks["fp32 channels_last"] += time_conv(repeats=1, calls=PEAK_CALLS).seconds
        round_start = time.perf_counter()
        for case in cases:
            run_round(case)
        print(f"round {round_ + 1}/{args.repeats}: {time.perf_counter() - round_start:.0f} s, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    peaks["fp32 channels_last"] += time_conv(repeats=1, calls=PEAK_CALLS).seconds
    peak = peak_gflops(peaks["fp32 channels_last"], "median")
    peak_best = peak_gflops(peaks["fp32 channels_last"], "best")
    # The batch-8 output is 32 MiB, just above glibc's largest dynamic mmap threshold: unless
    # --retain-memory, every call maps and faults it in afresh. Batch 4 (16 MiB) is served from
    # the heap once the threshold has risen: the convolution kernel's own speed.
    kernel = time_conv(batch=4, calls=2 * PEAK_CALLS)
    kernel_peak = conv_peak_flops(statistics.median(kernel.seconds), batch=4) / 1e9

    print(f"\nPeak: fp32 channels-last 3x3 conv, {len(peaks['fp32 channels_last'])} probes: median {peak:.1f}, "
          f"best {peak_best:.1f} GFLOP/s; the same conv at batch 4 (no page faults): {kernel_peak:.1f} GFLOP/s")
    print("Training step = forward + CE + backward + Adam; GF/img = forward+backward GFLOP per image; "
          "% peak = median round / median probe; % best = best round / best probe")
    print(f"{'section':<8} {'arch':<8} {'width':>6} {'size':>4} {'batch':>5} {'variant':<14} {'thr':>3} "
          f"{'params':>8} {'GF/img':>7} {'warm s':>6} {'img/s med':>9} {'img/s best':>10} "
          f"{'GF/s med':>8} {'GF/s best':>9} {'% peak':>6} {'% best':>6}")
    for case in cases:
        if case.error or not case.seconds:
            print(f"{case.section:<8} {case.label} failed: {case.error or 'no timing'}")
            continue
        print(f"{case.section:<8} {case.label} {case.threads or threads.intra_op:>3} "
              f"{case.parameters / 1e6:>7.2f}M {case.step_flops / case.batch / 1e9:>7.2f} "
              f"{case.warmup_seconds:>6.1f} {case.images_per_second('median'):>9.2f} "
              f"{case.images_per_second('best'):>10.2f} {case.gflops('median'):>8.1f} "
              f"{case.gflops('best'):>9.1f} {100 * case.gflops('median') / peak:>5.0f}% "
              f"{100 * case.gflops('best') / peak_best:>5.0f}%")
    ok = [c for c in cases if not c.error and c.seconds]
    for case in ok:
        if case.section == "small" and case.arch in ANCHORS:
            print(f"{case.arch} width {case.width:g}, {case.size}x{case.size}, batch {case.batch}: "
                  f"{case.images_per_second('best'):.1f} images/s best, {case.images_per_second('median'):.1f} "
                  f"median; segmentation_models_pytorch ResNet-18 {case.arch}: {ANCHORS[case.arch]}")
    unet = [c for c in ok if c.section == "arch" and c.arch == "unet"]
    for case in unet:
        print(f"U-Net width {case.width:g}, batch {case.batch}: {100 * case.gflops('median') / peak:.0f}% of peak "
              f"(best round over best probe: {100 * case.gflops('best') / peak_best:.0f}%; "
              f"of the batch-4 kernel peak: {100 * case.gflops('median') / kernel_peak:.0f}%)")
    print(f"total {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f}")

    summary = {
        "torch": torch.__version__,
        "threads": threads.intra_op,
        "interop_threads": threads.inter_op,
        "bf16_dot_products": bf16,
        "strided_pointwise_workaround": workaround,
        "retain_freed_memory": retained,
        "peak_gflops": {label: {"best": round(peak_gflops(s, "best"), 1), "median": round(peak_gflops(s, "median"), 1)}
                        for label, s in peaks.items()},
        "kernel_peak_gflops_batch4": round(kernel_peak, 1),
        "peak_probe_gflops": [round(conv_peak_flops(s) / 1e9, 1) for s in peaks["fp32 channels_last"]],
        "cases": [{
            "section": c.section, "arch": c.arch, "width": c.width, "size": c.size, "batch": c.batch,
            "variant": c.variant, "threads": c.threads or threads.intra_op, "parameters": c.parameters,
            "subsampled_pointwise_convs": c.patched, "forward_gflop": round(c.forward_flops / 1e9, 3),
            "step_gflop": round(c.step_flops / 1e9, 3), "warmup_s": round(c.warmup_seconds, 2),
            "steps_per_round": c.steps_per_round, "step_seconds": [round(s, 4) for s in c.seconds],
            **({"images_per_s": round(c.images_per_second("median"), 2),
                "images_per_s_best": round(c.images_per_second("best"), 2),
                "gflops": round(c.gflops("median"), 1), "gflops_best": round(c.gflops("best"), 1),
                "pct_peak": round(100 * c.gflops("median") / peak, 1),
                "pct_peak_best": round(100 * c.gflops("best") / peak_best, 1)}
               if not c.error and c.seconds else {"error": c.error or "no timing"}),
        } for c in cases],
        "unet_pct_peak": {f"{c.width:g}": round(100 * c.gflops("median") / peak, 1) for c in unet},
        "unet_pct_kernel_peak": {f"{c.width:g}": round(100 * c.gflops("median") / kernel_peak, 1) for c in unet},
        "load_average": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
