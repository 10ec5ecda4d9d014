"""Held-out evaluation: returns per test task, with 95% confidence intervals.

Only the environment's test split is used (method.md Sec. 6); every episode
starts from a fresh adaptation history, and the task schedule (fixed, or a
mid-episode switch) is applied per episode.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from learn2adapt.training.loop import RunState, _seed_for, make_envs, mpc_agent
from learn2adapt.training.rollout import run_episodes


#: Two-sided 95% Student-t quantiles for 1..30 degrees of freedom (normal beyond).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042]


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% confidence interval (Student t; 0 for one value)."""
    x = np.asarray(values, np.float64)
    if x.size < 2:
        return float(x.mean()) if x.size else float("nan"), 0.0
    df = x.size - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.960
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(x.size))


@dataclass
class TaskResult:
    task: dict[str, Any]
    returns: list[float]
    mean: float = 0.0
    ci95: float = 0.0

    def __post_init__(self) -> None:
        self.mean, self.ci95 = mean_ci95(self.returns)


@dataclass
class EvalResult:
    env: str
    algo: str
    schedule: str
    tasks: list[TaskResult] = field(default_factory=list)

    @property
    def all_returns(self) -> list[float]:
        return [r for t in self.tasks for r in t.returns]

    @property
    def mean(self) -> float:
        return mean_ci95(self.all_returns)[0]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean"], out["ci95"] = mean_ci95(self.all_returns)
        return out


def evaluate(
    st: RunState,
    episodes_per_task: Optional[int] = None,
    tasks: Optional[list[dict[str, Any]]] = None,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Evaluate the fitted rule of ``st`` on held-out test tasks.

    Args:
        st: a loaded run (config + fitted rule).
        episodes_per_task: defaults to ``cfg.eval.episodes_per_task``.
        tasks: defaults to the environment's ``list_tasks("test")``.
        seed: evaluation seed (episode reset seeds and planner noise).
        progress: show progress bars.
    """
    cfg = st.cfg
    n = episodes_per_task or cfg.eval.episodes_per_task
    length = cfg.eval.episode_length or cfg.episode_length
    envs = make_envs(cfg, min(cfg.num_envs, n), episode_length=length)
    test_tasks = tasks if tasks is not None else envs[0].unwrapped.list_tasks("test")
    result = EvalResult(cfg.env, cfg.algo, cfg.eval.schedule)
    try:
        for i, task in enumerate(test_tasks):
            agent = mpc_agent(cfg, st.rule, envs[0], len(envs), _seed_for(seed, 10_000 + i))
            episodes = run_episodes(envs, agent, n, lambda k: (task, _seed_for(seed, i, k) % (2**31)),
                                    desc=f"eval task {i + 1}/{len(test_tasks)}", progress=progress)
            result.tasks.append(TaskResult(task, [ep.total_reward for ep in episodes]))
    finally:
        for env in envs:
            env.close()
    return result


def save_eval(result: EvalResult, path: Path) -> None:
    Path(path).write_text(json.dumps(result.to_json(), indent=2) + "\n")
