"""What ``planner.cuda_graph`` records, timed beside the eager computation (issue 42's acceptance).

At the sizes of ``bench --only adaptation`` (HalfCheetah obs 17, act 6, MLP 512x512x512 ReLU,
random shooting N = 500, H = 10, E = 1, M = K = 16), on a GPU, each figure eager (``*_ms``)
and recorded (``*_graph_ms``), and the largest difference between the two results on the
same inputs (``*_graph_diff``: 0 or float rounding, the check that the replay is the eager
computation):

* ``<planner>_plan``: one plan of ``rs``, ``cem`` (5 x 500), ``mppi``, ``icem`` with the
  unadapted model, whole-plan graph; ``<planner>_plan_rollout_graph_ms``: only its rollouts
  recorded (the fallback under a deadline);
* ``adapt``: GrBAL's online step on the M-transition window; ``adapt_plan``: that step plus the
  RS plan with the adapted weights (two replays);
* ``mole_plan``: MOLe's update with 5 task models (eager in both: its update reads the
  posterior on the host) plus the plan (recorded whole);
* ``rebal_plan``: ReBAL's recurrent read (eager) plus the plan over its context (recorded);
* ``validation``: GrBAL's validation pass over 2048 segments in chunks of 256 (one replay).

The meta-training and supervised steps are not recorded (docs/experiments.md, "CUDA graphs").
Timed in alternating rounds (:func:`~learn2adapt.benchmarks.timing.interleaved_median_ms`);
on a CPU the module reports that it needs a GPU (a ``capture`` argument runs it anywhere, at
small sizes, for the tests).

Run: ``learn2adapt bench --device cuda --only capture`` or
``python -m learn2adapt.benchmarks.capture --device cuda``.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.adaptation.grbal import VAL_CHUNK, VAL_SEGMENTS, GrBAL
from learn2adapt.adaptation.rebal import ReBAL
from learn2adapt.benchmarks.adaptation import settled_mixture
from learn2adapt.benchmarks.timing import interleaved_median_ms
from learn2adapt.benchmarks.workload import cheetah_like_reward, random_recent
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.planning import make_planner
from learn2adapt.planning.base import Planner
from learn2adapt.planning.cuda_graph import Capture, PlanGraphs, RolloutGraphs
from learn2adapt.types import Window

PLANNERS = ("rs", "cem", "mppi", "icem")


def _max_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two tensors, or two dicts of them."""
    if isinstance(a, dict):
        return max(_max_diff(a[k], b[k]) for k in a)
    return float((a.float() - b.float()).abs().max())


def run(
    device: str = "cpu",
    num_candidates: int = 500,
    horizon: int = 10,
    num_envs: int = 1,
    hidden: Sequence[int] = (512, 512, 512),
    past: int = 16,
    future: int = 16,
    val_segments: int = VAL_SEGMENTS,
    rounds: int = 5,
    repeats: int = 10,
    capture: Capture | None = None,
) -> dict[str, object]:
    """The module docstring's figures on ``device`` (``capture``: how to record; default a CUDA graph)."""
    if torch.device(device).type != "cuda" and capture is None:
        return {"capture_skipped": "CUDA graphs need a CUDA device: bench --device cuda --only capture"}
    cases, planners, graphed_rule = _cases(
        device, num_candidates, horizon, num_envs, hidden, past, future, val_segments, capture
    )
    return _measure(cases, planners, graphed_rule, rounds, repeats)


#: name -> (eager, rollout-graph or None, whole-graph): functions returning what they compute.
Cases = dict[str, tuple[Callable[[], Any], Callable[[], Any] | None, Callable[[], Any]]]


def _cases(
    device: str,
    num_candidates: int,
    horizon: int,
    num_envs: int,
    hidden: Sequence[int],
    past: int,
    future: int,
    val_segments: int,
    capture: Capture | None,
) -> tuple[Cases, list[Planner], GrBAL]:
    """Every computation to time, eager and recorded; the planners made; the rule that records."""
    obs_dim, act_dim, d = 17, 6, device
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(num_envs, obs_dim, generator=g).to(d)
    recent = random_recent(num_envs, past, obs_dim, act_dim, g, d)
    reward = cheetah_like_reward()
    low, high = -torch.ones(act_dim, device=d), torch.ones(act_dim, device=d)
    torch.manual_seed(0)
    adapt = AdaptationConfig(past=past, future=future)
    model_cfg = ModelConfig(hidden=list(hidden))
    rule = GrBAL(obs_dim, act_dim, model_cfg, FitConfig(), adapt, d)
    graphed_rule = copy.deepcopy(rule)
    graphed_rule.record_graphs(capture)
    rebal = ReBAL(obs_dim, act_dim, model_cfg, FitConfig(), adapt, d)
    mixtures = [settled_mixture(rule, num_envs, models=5) for _ in range(2)]

    planners: list[Planner] = []

    def planner(name: str, recorded: str = "") -> Planner:
        """``recorded``: "" eager, "rollout" rollout graphs only, "plan" the whole plan."""
        p = make_planner(name, low, high, num_envs=num_envs, device=d, seed=0, horizon=horizon,
                         num_candidates=num_candidates, cuda_graph=capture is None and bool(recorded))  # fmt: skip
        if recorded and capture is not None:
            p.graphs = RolloutGraphs(capture)
            p.plan_graphs = PlanGraphs(capture) if recorded == "plan" else None
        elif recorded == "rollout":
            p.plan_graphs = None
        planners.append(p)
        return p

    cases: Cases = {}
    for name in PLANNERS:
        eager, rollout, whole = (planner(name, r) for r in ("", "rollout", "plan"))
        cases[f"{name}_plan"] = (
            lambda p=eager: p.plan(rule.predictor(None), reward, obs),
            lambda p=rollout: p.plan(rule.predictor(None), reward, obs),
            lambda p=whole: p.plan(rule.predictor(None), reward, obs),
        )
    cases["adapt"] = (
        lambda: rule.predictor(recent).params,
        None,
        lambda: graphed_rule.predictor(recent).params,
    )
    rs, rs_whole = planner("rs"), planner("rs", "plan")
    cases["adapt_plan"] = (
        lambda: rs.plan(rule.predictor(recent), reward, obs),
        None,
        lambda: rs_whole.plan(graphed_rule.predictor(recent), reward, obs),
    )
    mole, mole_whole = planner("rs"), planner("rs", "plan")
    cases["mole_plan"] = (
        lambda: mole.plan(mixtures[0].predictor(recent), reward, obs),
        None,
        lambda: mole_whole.plan(mixtures[1].predictor(recent), reward, obs),
    )
    rebal_eager, rebal_whole = planner("rs"), planner("rs", "plan")
    cases["rebal_plan"] = (
        lambda: rebal_eager.plan(rebal.predictor(recent), reward, obs),
        None,
        lambda: rebal_whole.plan(rebal.predictor(recent), reward, obs),
    )
    cases["validation"] = _validation_case(rule, graphed_rule, past + future, val_segments, (obs_dim, act_dim), g)
    return cases, planners, graphed_rule


def _validation_case(
    rule: GrBAL, graphed_rule: GrBAL, length: int, val_segments: int, dims: tuple[int, int], g: torch.Generator
) -> tuple[Callable[[], Any], None, Callable[[], Any]]:
    """The validation pass over ``val_segments`` random segments of ``length``, eager and recorded."""
    (obs_dim, act_dim), d = dims, rule.device
    chunks = [
        Window(*(torch.randn(min(VAL_CHUNK, val_segments - i), length, dim, generator=g).to(d)
                 for dim in (obs_dim, act_dim, obs_dim)))
        for i in range(0, val_segments, VAL_CHUNK)
    ]  # fmt: skip
    return (
        lambda: torch.tensor(rule.validation_losses(chunks)["after"]),
        None,
        lambda: torch.tensor(graphed_rule.validation_losses(chunks)["after"]),
    )


def _measure(
    cases: Cases, planners: list[Planner], graphed_rule: GrBAL, rounds: int, repeats: int
) -> dict[str, object]:
    """Each case's largest difference from eager, its times interleaved, and any recording failure."""
    out: dict[str, object] = {}
    for name, (eager_fn, _, graph_fn) in cases.items():  # first calls: recording, and the same result?
        out[f"{name}_graph_diff"] = _max_diff(graph_fn(), eager_fn())
    fns: list[Callable[[], Any]] = []
    keys: list[str] = []
    for name, (eager_fn, rollout_fn, graph_fn) in cases.items():
        fns += [eager_fn, graph_fn]
        keys += [f"{name}_ms", f"{name}_graph_ms"]
        if rollout_fn is not None:
            fns.append(rollout_fn)
            keys.append(f"{name}_rollout_graph_ms")
    times = dict(zip(keys, interleaved_median_ms(fns, rounds, repeats)))
    for name in cases:
        for key in (f"{name}_ms", f"{name}_graph_ms", f"{name}_rollout_graph_ms"):
            if key in times:
                out[key] = round(times[key], 3)
        out[f"{name}_graph_speedup"] = round(times[f"{name}_ms"] / times[f"{name}_graph_ms"], 2)
    recordings = [
        (f"{type(p).__name__} {what}", getattr(p, what)) for p in planners for what in ("graphs", "plan_graphs")
    ]
    recordings += [("online step", graphed_rule.online_graphs), ("validation", graphed_rule.validation_graphs)]
    failed = [f"{k}: {r.failure}" for k, r in recordings if r is not None and r.failure is not None]
    out["graph_failures"] = "; ".join(failed) or "none"
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(device=args.device, rounds=args.rounds, repeats=args.repeats)
    for key, value in result.items():
        print(f"  {key:36s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
