"""Timing helpers shared by the benchmarks, and the machine's fp32 matmul rate."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from learn2adapt.models.mlp import linear


def synchronize() -> None:
    """Wait for queued GPU work, so a clock read after it measures the work, not its launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize()
        t0 = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def interleaved_median_ms(
    fns: Sequence[Callable[[], object]], rounds: int, repeats: int | Sequence[int] = 1, warmup: int = 2
) -> list[float]:
    """Median over ``rounds`` of each function's median time (ms), the functions alternating.

    Why: on a shared machine the load drifts; alternating keeps a ratio of two timings
    from comparing a quiet moment with a busy one. ``repeats`` (one per function, or one
    for all) sets the calls per round; ``warmup`` untimed calls of each come first
    (allocator, thread pool, lazy inits).
    """
    reps = [repeats] * len(fns) if isinstance(repeats, int) else list(repeats)
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out, r in zip(fns, times, reps):
            out.append(median_ms(fn, repeats=r, warmup=0))
    return [statistics.median(t) for t in times]


def matmul_gflops(
    size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> float:
    """Measured matmul rate of this process (GFLOP/s), fp32 by default: the yardstick of every figure."""
    if torch.device(device).type == "cuda":
        size = max(size, 8192)  # a 2048 matmul is launch-bound on a large GPU
    a = torch.randn(size, size).to(device, dtype)
    b = torch.randn(size, size).to(device, dtype)
    out = torch.empty(size, size, dtype=dtype, device=device)
    ms = median_ms(lambda: torch.matmul(a, b, out=out), repeats=repeats, warmup=2)
    return 2 * size**3 / (ms * 1e-3) / 1e9


def linear_gflops(size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """The same product through the library's CPU linear layer without gradients (oneDNN where
    available, :mod:`learn2adapt.models.onednn`): on AMD processors MKL's fp32 sgemm, which
    :func:`matmul_gflops` measures, takes its AVX2 path and oneDNN runs 2x faster."""
    a = torch.randn(size, size, dtype=dtype)
    w = torch.nn.Parameter(torch.randn(size, size, dtype=dtype))
    b = torch.zeros(size, dtype=dtype)
    with torch.no_grad():
        ms = median_ms(lambda: linear(a, w, b), repeats=repeats, warmup=2)
    return 2 * size**3 / (ms * 1e-3) / 1e9


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), printed with every benchmark."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
