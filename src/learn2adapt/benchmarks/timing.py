"""Timing helpers shared by the benchmarks, and the machine's fp32 matmul rate."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matmul rate of this process (GFLOP/s), the yardstick of every figure."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    ms = median_ms(lambda: torch.matmul(a, b, out=out), repeats=repeats, warmup=2)
    return 2 * size**3 / (ms * 1e-3) / 1e9
