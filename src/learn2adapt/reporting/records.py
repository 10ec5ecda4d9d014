"""What a run directory holds for a report, and one method summarised over its runs.

:class:`RunRecord` reads a finished, evaluated run; :func:`summarize` turns the records of one
method into an :class:`AlgoSummary` (held-out return, curves, recall, timings) under one
schedule. The report (:mod:`learn2adapt.reporting.report`), its plots
(:mod:`learn2adapt.reporting.plots`) and the per-budget tables
(:mod:`learn2adapt.reporting.budgets`) all read these records; none of them is read here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learn2adapt.evaluation.results import EvalResult, load_protocol
from learn2adapt.evaluation.statistics import Stat
from learn2adapt.reporting.variants import base_algo
from learn2adapt.run.metrics_log import MetricsLog

#: Steps after a switch over which the "early recovery" reward per step is averaged.
RECOVERY_WINDOW = 50


def task_label(task: dict[str, Any]) -> str:
    """A short label for a task dict, e.g. ``mass=0.3, length=1.7``."""
    parts = []
    for k, v in task.items():
        if isinstance(v, float):
            v = f"{v:.3g}"
        elif isinstance(v, (list, dict)):
            v = json.dumps(v, separators=(",", ":"))
        parts.append(f"{k}={v}")
    return ", ".join(parts) or "default"


@dataclass
class RunRecord:
    """What one finished and evaluated run directory holds."""

    algo: str
    seed: int
    run_dir: Path
    metrics: list[dict[str, Any]]
    evals: dict[str, EvalResult]
    train_wall_seconds: float
    env_steps: int
    #: The ``metrics.csv`` column of its held-out return during training (the sample-efficiency curve).
    curve_key: str = "heldout_return"

    @classmethod
    def load(
        cls, run_dir: Path, name: str | None = None, eval_file: str = "eval.json", curve_key: str = "heldout_return"
    ) -> RunRecord:
        """The run in ``run_dir``, named ``name`` in reports (default: its algorithm), with the
        evaluation of ``eval_file`` (another planner's: ``compare --eval-planners``) and the
        training-time held-out returns of the ``metrics.csv`` column ``curve_key``."""
        run_dir = Path(run_dir)
        cfg = json.loads((run_dir / "config.json").read_text())
        metrics = MetricsLog.read(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else []
        last = metrics[-1] if metrics else {}
        return cls(
            name or cfg["algo"],
            int(cfg["seed"]),
            run_dir,
            metrics,
            load_protocol(run_dir / eval_file),
            float(last.get("wall_seconds", float("nan"))),
            int(last.get("env_steps", 0)),
            curve_key,
        )


def fmt_g(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if math.isfinite(x) else "n/a"


# --- aggregation over seeds ---------------------------------------------------------------
@dataclass
class AlgoSummary:
    """One algorithm under one schedule, aggregated over training seeds."""

    algo: str
    seeds: list[int]
    #: Mean return over the test tasks, CI over every episode of every seed (stratified by task).
    ret: Stat
    #: Mean return over all test tasks of each seed.
    seed_means: list[float]
    #: Per test task, over every episode of every seed.
    per_task: list[tuple[str, Stat]]
    #: Return of every episode by (seed, task index, episode index): the same key means the same
    #: initial state and schedule for every algorithm, so differences can be paired.
    episodes: dict[tuple[int, int, int], float]
    pred_before: Stat
    pred_after: Stat
    #: Reward per step in the first :data:`RECOVERY_WINDOW` steps after a switch, per seed.
    early_recovery: Stat
    pre_switch: Stat
    recovery_curve: np.ndarray | None
    #: Reward per step after switches to a task first seen vs seen before in the episode, per seed.
    first_visit: Stat
    revisit: Stat
    #: Mixture rules (MOLe): models held, and the MAP model against the true task, per seed.
    mean_models: Stat
    purity: Stat
    ari: Stat
    #: Mean forward velocity (m/s) over every episode of every seed (locomotion families).
    velocity: Stat
    env_steps: Stat
    train_wall: Stat
    eval_wall: Stat
    #: Per seed (in :attr:`seeds` order, NaN where not measured): the figures a claim pairs by seed.
    per_seed: dict[str, list[float]] = field(default_factory=dict)

    @property
    def return_stat(self) -> Stat:
        return self.ret


def heldout_curves(records: Sequence[RunRecord], algos: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per algorithm: environment steps and the held-out return there (mean over seeds), from the
    ``heldout_return`` of ``metrics.csv`` (``compare --sample-efficiency``); steps every seed reached."""
    out = {}
    for algo in algos:
        runs = [[r for r in rec.metrics if isinstance(r.get(rec.curve_key), (int, float))]
                for rec in records if rec.algo == algo]  # fmt: skip
        runs = [r for r in runs if r]
        if not runs:
            continue
        by_step: dict[float, list[float]] = {}
        key = next(rec.curve_key for rec in records if rec.algo == algo)
        for rows in runs:
            for row in rows:
                by_step.setdefault(float(row["env_steps"]), []).append(float(row[key]))
        steps = sorted(s for s, v in by_step.items() if len(v) == len(runs))
        out[algo] = (np.asarray(steps), np.asarray([np.mean(by_step[s]) for s in steps]))
    return out


def steps_to_reach(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], model_free: Sequence[str]
) -> tuple[float, dict[str, str]]:
    """The target X (the best model-based method's final held-out return) and, per algorithm, the
    first environment-step count where its mean held-out return reaches X ("not reached within N")."""
    based = {a: c for a, c in curves.items() if base_algo(a) not in model_free and len(c[1])}
    if not based:
        return math.nan, {}
    target = max(float(c[1][-1]) for c in based.values())
    table = {}
    for algo, (steps, values) in curves.items():
        hit = np.nonzero(values >= target)[0]
        table[algo] = f"{steps[hit[0]]:.0f}" if hit.size else f"not reached within {steps[-1]:.0f}"
    return target, table


def _recall_stat(evals: Sequence[EvalResult], name: str) -> Stat:
    """One recall figure over seeds (finite values only)."""
    values = [getattr(e.recall, name) for e in evals if e.recall is not None]
    return Stat.of([v for v in values if math.isfinite(v)])


def summarize(algo: str, records: Sequence[RunRecord], schedule: str) -> AlgoSummary | None:
    runs = [r for r in records if r.algo == algo and schedule in r.evals]
    if not runs:
        return None
    evals = [r.evals[schedule] for r in runs]
    labels = [task_label(t.task) for t in evals[0].tasks]
    per_task = []
    for i, label in enumerate(labels):
        per_task.append((label, Stat.of([x for e in evals if i < len(e.tasks) for x in e.tasks[i].returns])))
    curves, early, pre = [], [], []
    for e in evals:
        if e.recovery is not None and e.recovery.reward:
            curve = np.asarray(e.recovery.reward, np.float64)
            curves.append(curve)
            early.append(float(curve[:RECOVERY_WINDOW].mean()))
            pre.append(e.recovery.pre_switch_reward)
        else:
            early.append(math.nan)
            pre.append(math.nan)
    mean_curve: np.ndarray | None = None
    if curves:
        n = min(len(c) for c in curves)
        mean_curve = np.mean([c[:n] for c in curves], axis=0)
    return AlgoSummary(
        algo=algo,
        seeds=[r.seed for r in runs],
        ret=Stat.stratified([st.samples for _, st in per_task]),
        seed_means=[float(np.mean([t.mean for t in e.tasks])) for e in evals],
        per_task=per_task,
        episodes={
            (r.seed, i, k): x
            for r, e in zip(runs, evals)
            for i, t in enumerate(e.tasks)
            for k, x in enumerate(t.returns)
        },
        pred_before=Stat.of([e.pred_error[0] for e in evals]),
        pred_after=Stat.of([e.pred_error[1] for e in evals]),
        early_recovery=Stat.of(early),
        pre_switch=Stat.of(pre),
        recovery_curve=mean_curve,
        first_visit=_recall_stat(evals, "first_visit_reward"),
        revisit=_recall_stat(evals, "revisit_reward"),
        mean_models=_recall_stat(evals, "mean_models"),
        purity=_recall_stat(evals, "purity"),
        ari=_recall_stat(evals, "ari"),
        velocity=Stat.of([v for e in evals for t in e.tasks for v in t.velocities]),
        env_steps=Stat.of([r.env_steps for r in runs]),
        train_wall=Stat.of([r.train_wall_seconds for r in runs]),
        eval_wall=Stat.of([e.eval_wall_seconds for e in evals]),
        per_seed={
            "pred_error_before": [e.pred_error[0] for e in evals],
            "pred_error_after": [e.pred_error[1] for e in evals],
            "early_recovery": early,
            "pre_switch": pre,
        },
    )


@dataclass
class Budget:
    """Every entry under one schedule at one step count."""

    steps: int
    summaries: dict[str, AlgoSummary]
    #: Mean training environment steps of the runs evaluated there (>= ``steps``: the first
    #: checkpoint past it).
    actual_steps: dict[str, float]
