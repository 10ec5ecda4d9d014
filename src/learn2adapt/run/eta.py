"""How long a training run still needs, from the rows of ``metrics.csv`` so far.

Collection costs about the same every MPC iteration (the same number of planned steps),
while a fit grows with the aggregated data (an epoch is a pass over it, see
``fit.segment_epoch``). So the projection is: the mean collection time of the MPC
iterations so far, per remaining iteration, plus the last fit's time per transition
times the data each remaining fit will see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def remaining_seconds(rows: Sequence[dict[str, Any]], iterations: int) -> float | None:
    """Projected wall time of iterations ``last + 1 .. iterations``; None before one MPC iteration.

    Args:
        rows: per-iteration metrics with ``iteration``, ``env_steps``, ``collect_seconds``
            and ``fit_seconds`` (as :mod:`learn2adapt.run.loop` logs them).
        iterations: the run's last iteration.
    """
    mpc = [r for r in rows if int(r["iteration"]) >= 1]
    if not mpc:
        return None
    last = max(rows, key=lambda r: int(r["iteration"]))
    remaining = iterations - int(last["iteration"])
    if remaining <= 0:
        return 0.0
    by_it = {int(r["iteration"]): r for r in rows}
    prev = by_it.get(int(last["iteration"]) - 1)
    steps_per_iteration = float(last["env_steps"]) - float(prev["env_steps"]) if prev else float(last["env_steps"])
    collect = sum(float(r["collect_seconds"]) for r in mpc) / len(mpc)
    fit_per_step = float(last["fit_seconds"]) / max(float(last["env_steps"]), 1.0)
    future_steps = sum(float(last["env_steps"]) + j * steps_per_iteration for j in range(1, remaining + 1))
    return remaining * collect + fit_per_step * future_steps


def format_duration(seconds: float) -> str:
    """``1 h 05 min``, ``12 min``, ``45 s``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
