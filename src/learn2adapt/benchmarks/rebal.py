"""ReBAL planning cost versus the plain MLP dynamics model (issue #5's speed target).

One random-shooting plan (N=500, H=10, E=1) at HalfCheetah sizes (obs 17, act 6):

* ``plan_ms``: with the MB rule's MLP dynamics model (head 512x512x512, ReLU);
* ``rebal_plan_ms``: with ReBAL (GRU 256 + the same 512x512x512 head), *including*
  building the hidden state from M=16 recent transitions (``predictor(recent)``), which
  happens once per plan;
* ``rebal_predictor_ms``: that hidden-state build alone;
* ``rebal_over_mb``: the ratio (target <= 1.3).

ReBAL's head reads ``[s, a, h]``; the ``h`` part of its first layer is computed once per
plan, so each prediction costs the same matmuls as the MLP's. Both models use untrained
weights (speed does not depend on them). The two plans are timed in alternating rounds so
that load drift on a shared machine affects both alike.

Run: ``python -m learn2adapt.benchmarks.rebal`` or ``learn2adapt bench --only rebal``.
"""

from __future__ import annotations

import argparse

import torch

from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.adaptation.mb import ModelBased
from learn2adapt.adaptation.rebal import ReBAL
from learn2adapt.benchmarks.timing import interleaved_median_ms
from learn2adapt.benchmarks.workload import cheetah_like_reward, random_recent
from learn2adapt.cpus import usable_cpus
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.planning.random_shooting import RandomShooting


def run(
    num_candidates: int = 500,
    horizon: int = 10,
    num_envs: int = 1,
    obs_dim: int = 17,
    act_dim: int = 6,
    hidden: tuple[int, ...] = (512, 512, 512),
    rnn: str = "gru",
    rnn_hidden: int = 256,
    past: int = 16,
    rounds: int = 5,
    repeats: int = 5,
    device: str = "cpu",
) -> dict[str, float]:
    """Time both plans on ``device``; returns ``rebal_plan_ms``, ``plan_ms``, ``rebal_over_mb``, ``rebal_predictor_ms``."""
    torch.manual_seed(0)
    model_cfg = ModelConfig(hidden=list(hidden))
    adapt_cfg = AdaptationConfig(past=past, rnn=rnn, rnn_hidden=rnn_hidden)
    mb = ModelBased(obs_dim, act_dim, model_cfg, FitConfig(), adapt_cfg, device)
    rebal = ReBAL(obs_dim, act_dim, model_cfg, FitConfig(), adapt_cfg, device)
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(num_envs, obs_dim, generator=g).to(device)
    recent = random_recent(num_envs, past, obs_dim, act_dim, g, device)
    reward = cheetah_like_reward()
    low, high = -torch.ones(act_dim, device=device), torch.ones(act_dim, device=device)
    planners = [RandomShooting(low, high, horizon, num_candidates, device, seed=0, num_envs=num_envs) for _ in range(2)]

    def mb_plan() -> None:
        planners[0].plan(mb.predictor(None), reward, obs)

    def rebal_plan() -> None:
        planners[1].plan(rebal.predictor(recent), reward, obs)

    def rebal_predictor() -> None:
        rebal.predictor(recent)

    plan_ms, rebal_ms, predictor_ms = interleaved_median_ms([mb_plan, rebal_plan, rebal_predictor], rounds, repeats)
    return {
        "rebal_plan_ms": round(rebal_ms, 2),
        "plan_ms": round(plan_ms, 2),
        "rebal_over_mb": round(rebal_ms / plan_ms, 3),
        "rebal_predictor_ms": round(predictor_ms, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-N", "--num-candidates", type=int, default=500)
    parser.add_argument("-H", "--horizon", type=int, default=10)
    parser.add_argument("-E", "--num-envs", type=int, default=1)
    parser.add_argument("--rnn", default="gru", help="gru | lstm")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (default: every CPU this process may use)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or usable_cpus())
    result = run(num_candidates=args.num_candidates, horizon=args.horizon, num_envs=args.num_envs, rnn=args.rnn)
    print(
        f"threads={torch.get_num_threads()} N={args.num_candidates} H={args.horizon} E={args.num_envs} "
        f"obs 17, act 6, head 512x512x512, {args.rnn.upper()} 256, M=16"
    )
    for key, value in result.items():
        print(f"  {key:22s} {value}")


if __name__ == "__main__":
    main()
