"""``learn2adapt demo``: GrBAL against MB on the cheapest setting that shows GrBAL's advantage, a
comparison (:func:`~learn2adapt.experiments.compare.compare`) of a few minutes on two cores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from learn2adapt.cpus import usable_cpus
from learn2adapt.experiments.compare import compare
from learn2adapt.experiments.runner import make_runner

#: What ``learn2adapt demo`` runs: the cheapest setting that shows GrBAL's advantage.
DEMO_ENV = "learn2adapt/PendulumVaried-v0"
DEMO_PRESET = "demo"
DEMO_ALGOS = ("grbal", "mb")
DEMO_TITLE = "learn2adapt demo: GrBAL vs MB under changing dynamics"
#: Where the demo writes when not told.
DEMO_OUT = Path("runs") / "demo"


def default_workers() -> int:
    """Runs in parallel when not told: 2, or 1 on one core."""
    return min(2, usable_cpus())


def run_demo(out: Path, seeds: Sequence[int], workers: int, progress: bool = True) -> Path:
    """Train and evaluate :data:`DEMO_ALGOS` x ``seeds`` on :data:`DEMO_ENV` into ``out``; returns the report."""
    with make_runner(workers) as runner:
        return compare(DEMO_ENV, DEMO_PRESET, DEMO_ALGOS, seeds, out, runner, progress=progress, title=DEMO_TITLE)
