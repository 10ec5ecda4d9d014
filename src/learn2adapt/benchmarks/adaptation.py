"""GrBAL speed: online adaptation + planning, and the cost of a meta-training step.

At HalfCheetah sizes (obs 17, act 6), MLP 512x512x512 ReLU, M = K = 16:

* ``plan_ms``: one random-shooting plan (N=500, H=10, E=1) with the unadapted model;
* ``mole_plan_ms``: MOLe's update with 5 task models settled on one task (E step over all five,
  a new-task candidate, the M step of the MAP model) plus the same plan; its ratio to
  ``adapt_plan_ms`` (target <= 1.3);
* ``adapt_plan_ms``: one online adaptation on M=16 transitions (``predictor(recent)``:
  an inner gradient step per environment, adapted weights ``(E, in, out)``) plus the same
  plan with the adapted model; ``adapt_ms`` the adaptation alone;
  ``adapt_plan_over_plan`` their ratio (targets: <= 1.15 and adapt_plan_ms <= 35 ms);
* on a GPU, ``plan_graph_ms``, ``adapt_plan_graph_ms``, ``mole_plan_graph_ms``: the same
  three with ``planner.cuda_graph`` (each rollout replayed from a recorded CUDA graph);
* ``meta_step_ratio``: one second-order meta-training step (meta-batch 10 segments,
  M = K = 16, default inner update, Adam update included) over one plain supervised
  step on the same 320 transitions (target <= 5);
* ``meta_step_<impl>_ratio`` for each exact implementation of the inner update
  (``lowrank``, ``batched``, ``vmap``, ``loop``: see adaptation/inner_update.py), and
  for the first-order and per-parameter (Meta-SGD) variants.

Weights are untrained (speed does not depend on them). Timed in alternating rounds so
that load drift on a shared machine affects all figures alike; the fp32 matmul rate of
the same process (``matmul_gflops``) is reported as the yardstick.

Run: ``python -m learn2adapt.benchmarks.adaptation`` or ``learn2adapt bench --only adaptation``.
"""

from __future__ import annotations

import argparse
import copy
import functools
from collections.abc import Callable, Sequence

import torch

from learn2adapt.adaptation.base import adam
from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.adaptation.grbal import GrBAL
from learn2adapt.adaptation.mixture import MixtureState
from learn2adapt.adaptation.mole import MOLe
from learn2adapt.benchmarks.timing import interleaved_median_ms, matmul_gflops
from learn2adapt.benchmarks.workload import cheetah_like_reward, random_recent
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.planning.random_shooting import RandomShooting

#: Meta-step implementations compared (second order); ``auto`` picks ``lowrank`` here.
IMPLS = ("lowrank", "batched", "vmap", "loop")


def settled_mixture(rule: GrBAL, num_envs: int, models: int) -> MixtureState:
    """MOLe's online state on ``rule``'s weights, holding ``models`` task models per environment."""
    cfg = copy.deepcopy(rule.adapt_cfg)
    cfg.mixture.max_models = models
    mole = MOLe(rule.obs_dim, rule.act_dim, rule.model_cfg, rule.fit_cfg, cfg, rule.device)
    mole.load_state_dict(rule.state_dict())
    mole.calibration.post_adapt_mse.fill_(0.05)
    state = mole.online_state(num_envs)
    state.active.fill_(True)  # a full mixture: every model scored and a candidate made, every step
    # Settled on one task, as between switches: the MAP model holds the posterior, so it alone
    # takes the M step (the others' weights fall below M_STEP_MIN_WEIGHT). The models here are
    # untrained copies of one network, so the likelihood cannot tell them apart: the counts do.
    state.counts.fill_(1e-4)
    state.counts[:, 0] = 1000.0
    state.level.fill_(float("inf"))  # untrained weights must not trip the surprise gate
    return state


def _rule(
    obs_dim: int,
    act_dim: int,
    hidden: Sequence[int],
    past: int,
    future: int,
    meta_batch: int,
    device: str = "cpu",
    **adapt,
) -> GrBAL:
    torch.manual_seed(0)
    cfg = AdaptationConfig(past=past, future=future, meta_batch=meta_batch, **adapt)
    return GrBAL(obs_dim, act_dim, ModelConfig(hidden=list(hidden)), FitConfig(), cfg, device)


def run(
    num_candidates: int = 500,
    horizon: int = 10,
    num_envs: int = 1,
    obs_dim: int = 17,
    act_dim: int = 6,
    hidden: Sequence[int] = (512, 512, 512),
    past: int = 16,
    future: int = 16,
    meta_batch: int = 10,
    impls: Sequence[str] = IMPLS,
    rounds: int = 5,
    repeats: int = 5,
    threads: int | None = 2,
    device: str = "cpu",
) -> dict[str, float]:
    """Measure the figures of the module docstring on ``device``; returns them by name."""
    if threads:
        torch.set_num_threads(threads)
    out: dict[str, float] = {
        "threads": torch.get_num_threads(),
        "matmul_gflops": round(matmul_gflops(device=device), 1),
    }
    g = torch.Generator().manual_seed(1)
    rule_of = functools.partial(_rule, obs_dim, act_dim, hidden, past, future, meta_batch, device)
    out.update(_online(rule_of(), num_candidates, horizon, num_envs, past, g, rounds, repeats, device))
    out.update(_meta_steps(rule_of, impls, g, rounds, repeats))
    return out


def _online(
    rule: GrBAL,
    num_candidates: int,
    horizon: int,
    num_envs: int,
    past: int,
    g: torch.Generator,
    rounds: int,
    repeats: int,
    d: str,
) -> dict[str, float]:
    """Online figures: plan, adapt + plan, MOLe's update + plan (and, on a GPU, with CUDA graphs)."""
    obs_dim, act_dim = rule.obs_dim, rule.act_dim
    obs = torch.randn(num_envs, obs_dim, generator=g).to(d)
    recent = random_recent(num_envs, past, obs_dim, act_dim, g, d)
    low, high = -torch.ones(act_dim, device=d), torch.ones(act_dim, device=d)
    # On a GPU the three plans are timed eagerly and with planner.cuda_graph (recorded rollouts).
    graphs = (False, True) if torch.device(d).type == "cuda" else (False,)
    planners = {
        (name, g): RandomShooting(low, high, horizon, num_candidates, d, seed=0, num_envs=num_envs, cuda_graph=g)
        for name in ("plan", "adapt_plan", "mole_plan")
        for g in graphs
    }
    reward = cheetah_like_reward()
    mixture = settled_mixture(rule, num_envs, models=5)
    predictors = {
        "plan": lambda: rule.predictor(None),
        "adapt_plan": lambda: rule.predictor(recent),
        "mole_plan": lambda: mixture.predictor(recent),
    }
    timed = [(lambda p=p, name=name: p.plan(predictors[name](), reward, obs)) for (name, _), p in planners.items()]
    online_ms = interleaved_median_ms([*timed, lambda: rule.predictor(recent)], rounds, repeats)
    by_key = dict(zip(planners, online_ms))
    plan, adapt_plan, mole_plan = (by_key[(name, False)] for name in ("plan", "adapt_plan", "mole_plan"))
    adapt = online_ms[-1]
    out: dict[str, float] = {}
    if len(graphs) > 1:
        out.update({f"{name}_graph_ms": round(by_key[(name, True)], 2) for name in ("plan", "adapt_plan", "mole_plan")})
    out.update(
        {
            "plan_ms": round(plan, 2),
            "adapt_plan_ms": round(adapt_plan, 2),
            "adapt_ms": round(adapt, 3),
            "adapt_plan_over_plan": round(adapt_plan / plan, 3),
            "mole_plan_ms": round(mole_plan, 2),
            "mole_plan_over_adapt_plan": round(mole_plan / adapt_plan, 3),
        }
    )
    return out


def _meta_steps(
    rule_of: Callable[..., GrBAL], impls: Sequence[str], g: torch.Generator, rounds: int, repeats: int
) -> dict[str, float]:
    """A meta-training step of each implementation (and variant) against a supervised step on the
    same transitions; ``rule_of(**adaptation options)`` builds a rule of the measured sizes."""
    sup = rule_of()
    cfg, obs_dim, act_dim, d = sup.adapt_cfg, sup.obs_dim, sup.act_dim, sup.device
    meta_batch, length = cfg.meta_batch, cfg.past + cfg.future
    seg_obs = torch.randn(meta_batch, length, obs_dim, generator=g).to(d)
    seg_act = (torch.rand(meta_batch, length, act_dim, generator=g) * 2 - 1).to(d)
    seg_nxt = seg_obs + 0.1 * torch.randn(meta_batch, length, obs_dim, generator=g).to(d)
    flat = [t.reshape(-1, t.shape[-1]) for t in (seg_obs, seg_act, seg_nxt)]

    def step_fn(r: GrBAL, loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        opt = adam(r.module.parameters(), 0.0, r.device)  # the fits' Adam; lr 0: keep weights

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss_fn().backward()
            opt.step()

        return step

    fns: list[Callable[[], None]] = [step_fn(sup, lambda: sup.model.loss(flat[0], flat[1], flat[2]))]
    names = ["supervised"]
    reps = [repeats]
    for impl in impls:
        r = rule_of(inner_impl=impl)
        fns.append(step_fn(r, lambda r=r: r.meta_loss(seg_obs, seg_act, seg_nxt)))
        names.append(impl)
        reps.append(repeats if impl in ("lowrank", "batched") else 1)  # vmap / loop: slow, for reference
    r_fo = rule_of(first_order=True)
    fns.append(step_fn(r_fo, lambda: r_fo.meta_loss(seg_obs, seg_act, seg_nxt)))
    names.append("first_order")
    reps.append(repeats)
    r_pp = rule_of(step_size="per_parameter")
    fns.append(step_fn(r_pp, lambda: r_pp.meta_loss(seg_obs, seg_act, seg_nxt)))
    names.append("per_parameter")
    reps.append(repeats)
    times = dict(zip(names, interleaved_median_ms(fns, rounds, reps)))
    sup_ms = times.pop("supervised")
    out = {"supervised_step_ms": round(sup_ms, 2)}
    default_impl = sup.impl  # what meta-training uses with the default options
    out["meta_step_ms"] = round(times[default_impl], 2) if default_impl in times else float("nan")
    out["meta_step_ratio"] = round(out["meta_step_ms"] / sup_ms, 3)
    for name, ms in times.items():
        out[f"meta_step_{name}_ratio"] = round(ms / sup_ms, 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-N", "--num-candidates", type=int, default=500)
    parser.add_argument("-H", "--horizon", type=int, default=10)
    parser.add_argument("-E", "--num-envs", type=int, default=1)
    parser.add_argument("--impls", default=",".join(IMPLS), help="meta-step implementations to time")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    result = run(
        num_candidates=args.num_candidates,
        horizon=args.horizon,
        num_envs=args.num_envs,
        impls=args.impls.split(","),
        rounds=args.rounds,
        threads=args.threads,
    )
    print(
        f"N={args.num_candidates} H={args.horizon} E={args.num_envs}, obs 17, act 6, MLP 512x512x512, "
        "M=K=16, meta-batch 10"
    )
    for key, value in result.items():
        print(f"  {key:28s} {value}")


if __name__ == "__main__":
    main()
