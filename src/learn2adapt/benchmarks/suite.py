"""The benchmark suite behind ``learn2adapt bench``: which benchmarks run, in what order, and their
figures as one flat dict (what ``bench --json`` saves).

:func:`run_benchmarks` measures the machine's yardsticks (matmul rates), then runs each selected
benchmark module's ``run(device=...) -> dict``, and optionally the bf16 agreement on a trained
run; it hands each section to ``report`` as it is measured, so a caller can show it while the
next one runs.

torch and the benchmark modules are imported inside the functions: the command line imports this
module for :data:`BENCHMARKS` (its ``--help``) whatever the command.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from learn2adapt.cpus import usable_cpus
from learn2adapt.errors import ConfigError, UnknownName

#: Benchmark modules run by ``learn2adapt bench``, in order; each has ``run(device=...) -> dict``.
BENCHMARKS = ("planning", "adaptation", "rebal", "paper_run", "pets", "controller")
#: Benchmark modules run only when ``--only`` names them (slower, or not about learning speed).
OPTIONAL_BENCHMARKS = ("envs", "capture")

#: The sections :func:`run_benchmarks` reports besides the benchmarks themselves: the machine's
#: matmul yardsticks, the CPU's linear-layer rates (on ``cpu`` only), and bf16 against fp32
#: candidate ranking with a trained run's model (with ``run``; its figures' key in the result).
MACHINE, LINEAR, TRAINED = "machine", "linear", "bf16_agreement_trained"

#: ``report(section, figures)``: a benchmark's name with ``None`` before it runs and with its
#: flattened figures after; :data:`MACHINE`, :data:`LINEAR`, :data:`TRAINED` with theirs.
Report = Callable[[str, dict[str, object] | None], None]


def flatten(figures: dict[str, object]) -> dict[str, object]:
    """Rows of per-planner figures become ``<planner>_<precision>_<figure>`` keys."""
    out: dict[str, object] = {}
    for key, value in figures.items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and "planner" in value[0]:
            for row in value:
                prefix = f"{row['planner']}_{row.get('precision', 'fp32')}"
                out.update({f"{prefix}_{k}": v for k, v in row.items() if k not in ("planner", "precision")})
        else:
            out[key] = value
    return out


def _selected(only: Sequence[str] | None, device: str, overrides: Sequence[str]) -> list[str]:
    """The benchmarks to run, and every option checked before anything is measured."""
    from learn2adapt.run.config import check_device

    selected = list(only) if only else list(BENCHMARKS)
    unknown = [n for n in selected if n not in BENCHMARKS + OPTIONAL_BENCHMARKS]
    if unknown:
        raise UnknownName(f"unknown benchmark {unknown[0]!r}; available: {', '.join(BENCHMARKS + OPTIONAL_BENCHMARKS)}")
    check_device(device)
    if overrides:
        if "paper_run" not in selected:
            raise ConfigError("--set changes the projected paper run only: add paper_run to --only")
        from learn2adapt.benchmarks.paper_run import paper_config

        paper_config(overrides, device)  # a bad option fails here, before anything is measured
    return selected


def machine_figures(device: str) -> dict[str, object]:
    """The device, its name, the CPU, torch's threads and the fp32 / bf16 matmul rates (GFLOP/s)."""
    import torch

    from learn2adapt.benchmarks.timing import cpu_model, matmul_gflops

    card = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu_model()
    return {
        "device": device,
        "processor": card,
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "matmul_gflops": round(matmul_gflops(device=device), 1),
        "matmul_gflops_bf16": round(matmul_gflops(dtype=torch.bfloat16, device=device), 1),
    }


def linear_figures() -> dict[str, object]:
    """The CPU's rates for the models' linear-layer products without gradients (GFLOP/s)."""
    import torch

    from learn2adapt.benchmarks.timing import linear_gflops

    return {
        "linear_gflops": round(linear_gflops(), 1),
        "linear_gflops_bf16": round(linear_gflops(dtype=torch.bfloat16), 1),
    }


def run_benchmarks(
    only: Sequence[str] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    overrides: Sequence[str] = (),
    run: str | None = None,
    report: Report | None = None,
) -> dict[str, object]:
    """Run the suite; returns every figure, flat (:func:`flatten`), as ``bench --json`` saves them.

    Args:
        only: benchmarks to run (default :data:`BENCHMARKS`; :data:`OPTIONAL_BENCHMARKS` only when named).
        device: torch device to measure (``cpu``, ``cuda``, ``cuda:N``).
        threads: torch threads (default: every CPU this process may use).
        overrides: options of the projected paper run (``KEY=VALUE``); needs ``paper_run`` selected.
        run: a run directory whose trained model ranks candidates in bf16 and fp32 (:data:`TRAINED`).
        report: called with each section as it is measured (:data:`Report`).
    """
    import torch

    show = report or (lambda section, figures: None)
    torch.set_num_threads(threads or usable_cpus())
    selected = _selected(only, device, overrides)
    figures = machine_figures(device)
    show(MACHINE, figures)
    if device == "cpu":
        linear = linear_figures()
        figures.update(linear)
        show(LINEAR, linear)
    for name in selected:
        module = importlib.import_module(f"learn2adapt.benchmarks.{name}")
        show(name, None)
        kwargs = {"overrides": overrides} if name == "paper_run" else {}
        measured = flatten(module.run(device=device, **kwargs))
        figures.update(measured)
        show(name, measured)
    if run:
        from learn2adapt.benchmarks.planning import bf16_agreement_on_run

        figures[TRAINED] = agreement = bf16_agreement_on_run(run)
        show(TRAINED, agreement)
    return figures


def write_figures(figures: dict[str, object], path: Path) -> None:
    """Save the figures as JSON (``bench --json FILE``)."""
    Path(path).write_text(json.dumps(figures, indent=2) + "\n")
