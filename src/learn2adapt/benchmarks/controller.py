"""Latency of the real-time controller (:class:`learn2adapt.control.Controller`) at the ``paper`` size.

HalfCheetahDisabledJoint, GrBAL ``paper`` (MLP 512x3, M = K = 16, random shooting N = 500,
H = 10, E = 1), driven in a closed loop on the simulator for ``steps`` calls of ``act``:

* ``act_ms_p50`` / ``act_ms_p99`` with adaptation (GrBAL: an inner step on the last M
  transitions, then the plan) and ``plain_act_ms_*`` without it (MB, the same network and
  planner), measured in the same process, alternating in blocks so load drift hits both;
  ``adapted_over_plain_p50`` their ratio;
* with a ``deadline_ms`` (50) deadline: ``deadline_act_ms_p99``, ``deadline_met`` (the share of
  calls within the deadline) and ``deadline_candidates_p50`` (N that random shooting fitted);
  the same ``tight_*`` under a deadline of 60% of the unbounded median, which the plan must
  shrink to meet.

Weights are untrained (speed does not depend on them); the planner's precision is the
preset's (``auto``: bf16 on a CPU). Run: ``learn2adapt bench --only controller``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from learn2adapt.control import Controller
from learn2adapt.data.trajectory_buffer import TrajectoryBuffer
from learn2adapt.envs import make_env
from learn2adapt.run.build import build_rule
from learn2adapt.run.options import apply_overrides
from learn2adapt.run.presets import preset_config
from learn2adapt.run.state import RunState

ENV = "learn2adapt/HalfCheetahDisabledJoint-v0"


def _run(algo: str, device: str, *overrides: str) -> RunState:
    cfg = preset_config(ENV, "paper", "grbal")
    cfg.algo = algo  # MB on GrBAL's network and planner: the same plan without adaptation
    cfg = apply_overrides(cfg, [f"device={device}", *overrides]).validate()
    env = make_env(cfg.env)
    torch.manual_seed(0)
    rule = build_rule(cfg, env)
    env.close()
    return RunState(cfg, rule, TrajectoryBuffer(rule.obs_dim, rule.act_dim), 0)


def _loop(ctrl: Controller, env, steps: int, seed: int) -> tuple[list[float], list[int]]:
    ctrl.reset()
    obs, _ = env.reset(seed=seed)
    times, work = [], []
    for _ in range(steps):
        start = time.perf_counter()
        action = ctrl.act(obs)
        times.append(1e3 * (time.perf_counter() - start))
        work.append(ctrl.last_work)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            ctrl.reset()
            obs, _ = env.reset()
    return times, work


def run(device: str = "cpu", steps: int = 150, blocks: int = 3, deadline_ms: float = 50.0) -> dict[str, float]:
    """Closed-loop ``act`` latencies (ms) with and without adaptation, and under a deadline."""
    env = make_env(ENV)
    controllers = {
        "adapted": Controller(None, run=_run("grbal", device)),
        "plain": Controller(None, run=_run("mb", device)),
        "last_layer": Controller(None, run=_run("grbal", device, "adaptation.online_layers=1")),
    }
    timed: dict[str, list[float]] = {name: [] for name in controllers}
    for b in range(blocks):  # alternate, so drifting load affects all alike
        for name, ctrl in controllers.items():
            timed[name] += _loop(ctrl, env, steps // blocks, seed=b)[0][5:]  # the first calls warm caches
    p = lambda xs, q: round(float(np.percentile(xs, q)), 3)  # noqa: E731
    out: dict[str, float] = {}
    tight = round(0.6 * p(timed["adapted"], 50), 1)
    for prefix, limit in (("deadline", deadline_ms), ("tight_deadline", tight)):
        bounded = Controller(None, deadline_ms=limit, run=_run("grbal", device))
        times, work = _loop(bounded, env, steps, seed=0)
        out |= {
            f"{prefix}_ms": limit,
            f"{prefix}_floor_ms": round(bounded.floor_ms, 3),
            f"{prefix}_act_ms_p50": p(times, 50),
            f"{prefix}_act_ms_p99": p(times, 99),
            f"{prefix}_met": round(float(np.mean(np.array(times) <= limit)), 3),
            f"{prefix}_candidates_p50": float(np.median(work)),
        }
    env.close()
    return {
        "act_ms_p50": p(timed["adapted"], 50),
        "act_ms_p99": p(timed["adapted"], 99),
        "plain_act_ms_p50": p(timed["plain"], 50),
        "plain_act_ms_p99": p(timed["plain"], 99),
        "adapted_over_plain_p50": round(p(timed["adapted"], 50) / p(timed["plain"], 50), 3),
        "last_layer_act_ms_p50": p(timed["last_layer"], 50),
        "last_layer_act_ms_p99": p(timed["last_layer"], 99),
        "last_layer_over_plain_p50": round(p(timed["last_layer"], 50) / p(timed["plain"], 50), 3),
        **out,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:32s} {value}")
