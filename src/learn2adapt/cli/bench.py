"""``bench``: the benchmark suite (:mod:`learn2adapt.benchmarks.suite`), each section printed as it is measured."""

from __future__ import annotations

import argparse
from pathlib import Path


def bench_args(p: argparse.ArgumentParser) -> None:
    from learn2adapt.benchmarks.suite import BENCHMARKS, OPTIONAL_BENCHMARKS  # names only: imports no torch

    p.add_argument("--json", default=None, metavar="FILE", help="also save the figures as JSON")
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)} (default: all of them); "
        f"also accepts, run only when named: {', '.join(OPTIONAL_BENCHMARKS)} "
        "(environment step overhead vs Gymnasium, about 25 s)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: every CPU this process may use)")
    p.add_argument("--device", default="cpu", help="torch device to measure: cpu | cuda | cuda:N")
    p.add_argument(
        "--run",
        default=None,
        metavar="RUN_DIR",
        help="also check bf16 planning against fp32 with this run's trained model",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="project the paper run with a changed option, e.g. --set fit.max_steps=1500 (repeatable)",
    )


def _printer(run: str | None):
    """``report`` of :func:`~learn2adapt.benchmarks.suite.run_benchmarks`: each section as it comes."""
    from learn2adapt.benchmarks.suite import LINEAR, MACHINE, TRAINED

    def show(section: str, figures: dict[str, object] | None) -> None:
        if figures is None:
            print(f"--- {section}", flush=True)
        elif section == MACHINE:
            print(
                f"{figures['processor']} ({figures['device']}): fp32 matmul {figures['matmul_gflops']} GFLOP/s, "
                f"bf16 {figures['matmul_gflops_bf16']} GFLOP/s; CPU {figures['cpu']}, {figures['threads']} threads"
            )
        elif section == LINEAR:
            print(
                f"  the same products as the models' linear layers without gradients: fp32 {figures['linear_gflops']}"
                f" GFLOP/s, bf16 {figures['linear_gflops_bf16']} GFLOP/s"
            )
        elif section == TRAINED:
            print(f"--- bf16 vs fp32 candidate ranking with the trained model of {run}")
            for key in ("spearman", "same_action", "top10_overlap", "max_abs_return_diff"):
                print(f"  {key:48s} {figures[key]}")
        else:
            for key, value in figures.items():
                print(f"  {key:48s} {value:.4g}" if isinstance(value, float) else f"  {key:48s} {value}")

    return show


def cmd_bench(args: argparse.Namespace) -> int:
    from learn2adapt.benchmarks.suite import run_benchmarks, write_figures

    figures = run_benchmarks(
        args.only.split(",") if args.only else None,
        device=args.device,
        threads=args.threads,
        overrides=args.set or [],
        run=args.run,
        report=_printer(args.run),
    )
    if args.json:
        write_figures(figures, Path(args.json))
        print(f"saved {args.json}")
    return 0
