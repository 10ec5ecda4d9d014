"""Planner speed on a GrBAL-sized model (MLP 512x3, HalfCheetah sizes), and bf16 agreement.

For each planner and precision: plan time (median after warm-up), model evaluations
per second, achieved GFLOP/s, fraction of this process's measured fp32 matmul rate,
``plan_efficiency`` = time of the same model evaluations alone (same batch shapes,
no planner logic) / whole plan time, and ``addmm_plan_ms`` / ``onednn_speedup``: the same plan
with the linear layers on plain ``addmm`` (:mod:`learn2adapt.models.onednn` off) and the ratio.

Run: ``learn2adapt bench --only planning``, or ``python -m learn2adapt.benchmarks.planning --help`` for options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from learn2adapt.benchmarks.timing import interleaved_median_ms, matmul_gflops
from learn2adapt.benchmarks.workload import cheetah_like_reward
from learn2adapt.cpus import usable_cpus
from learn2adapt.evaluation.statistics import spearman
from learn2adapt.models import onednn
from learn2adapt.models.mlp import MLP
from learn2adapt.planning import PLANNERS, make_planner
from learn2adapt.planning.base import Planner
from learn2adapt.types import PredictFn, RewardFn

PLANNER_NAMES = tuple(PLANNERS)


def make_model(obs_dim: int, act_dim: int, hidden: Sequence[int] = (512, 512, 512), seed: int = 0) -> MLP:
    """A randomly initialised ReLU MLP ``(obs, act) -> delta obs`` (the GrBAL architecture), the
    library's own (so its linear-layer path is what is timed)."""
    torch.manual_seed(seed)
    return MLP(obs_dim + act_dim, obs_dim, hidden).eval()


def model_macs(model: MLP) -> int:
    """Multiply-accumulates of one forward pass of one sample (the weight matrices)."""
    return sum(p.numel() for name, p in model.named_parameters() if name.startswith("w"))


def delta_predict(model: MLP) -> PredictFn:
    """``s' = s + model([s, a])``, batched over any leading dimensions."""

    def predict(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return obs + model(torch.cat([obs, act], dim=-1))

    return predict


def model_only_fn(predict: PredictFn, planner: Planner, obs: torch.Tensor) -> Callable[[], None]:
    """The model evaluations of one plan alone: same calls, same batch shapes.

    One ``predict`` call per step of every iteration, on pre-made inputs of the shape the
    planner uses; with the planner's precision (autocast), without sampling, rewards or ranking.
    """
    E = obs.shape[0]
    sizes = getattr(planner, "population", None)
    if sizes is not None:  # iCEM: shrinking population plus carried elites
        batches = [p + planner.num_keep for p in sizes]
    else:
        batches = [planner.num_candidates] * getattr(planner, "iterations", 1)
    inputs = [
        (torch.randn(E, n, obs.shape[-1], device=obs.device), torch.rand(E, n, planner.act_dim, device=obs.device))
        for n in batches
    ]

    def run() -> None:
        with torch.no_grad(), planner._autocast(obs.device.type):
            for s, a in inputs:
                for _ in range(planner.horizon):
                    predict(s, a)

    return run


def bf16_agreement(
    predict: PredictFn,
    reward_fn: RewardFn,
    obs: torch.Tensor,
    action_low: torch.Tensor,
    action_high: torch.Tensor,
    horizon: int = 10,
    num_candidates: int = 500,
    seed: int = 0,
) -> dict[str, object]:
    """Does bf16 rank random-shooting candidates like fp32?

    The same candidates (uniform, seeded) are evaluated with ``predict`` in fp32 and
    under bf16 autocast.

    Returns:
        ``spearman``: per-environment Spearman rank correlation of the returns (list);
        ``same_action``: per environment, whether both pick the same candidate (list);
        ``top10_overlap``: fraction of fp32's top-10 candidates also in bf16's top 10;
        ``max_abs_return_diff``.
    """
    device = obs.device
    fp32 = make_planner(
        "rs", action_low, action_high, horizon=horizon, num_candidates=num_candidates, seed=seed, device=device
    )
    bf16 = make_planner(
        "rs",
        action_low,
        action_high,
        horizon=horizon,
        num_candidates=num_candidates,
        seed=seed,
        precision="bf16",
        device=device,
    )
    obs = obs.float()
    actions = fp32.sample(obs.shape[0]).clone()
    r32 = fp32.evaluate(predict, reward_fn, obs, actions).clone()
    r16 = bf16.evaluate(predict, reward_fn, obs, actions).clone()

    k = min(10, num_candidates)
    top32, top16 = r32.topk(k, dim=1).indices, r16.topk(k, dim=1).indices
    overlap = [len(set(x.tolist()) & set(y.tolist())) / k for x, y in zip(top32, top16)]
    finite = torch.isfinite(r32) & torch.isfinite(r16)
    return {
        "spearman": [round(spearman(a.numpy(), b.numpy()), 4) for a, b in zip(r32.cpu(), r16.cpu())],
        "same_action": (r32.argmax(1) == r16.argmax(1)).tolist(),
        "top10_overlap": overlap,
        "max_abs_return_diff": float((r32 - r16)[finite].abs().max()) if bool(finite.any()) else float("nan"),
    }


def run(
    planners: Sequence[str] = PLANNER_NAMES,
    precisions: Sequence[str] = ("fp32", "bf16"),
    num_candidates: int = 500,
    horizon: int = 10,
    num_envs: int = 1,
    obs_dim: int = 17,
    act_dim: int = 6,
    hidden: Sequence[int] = (512, 512, 512),
    repeats: int = 15,
    warmup: int = 3,
    threads: int | None = None,
    planner_options: dict[str, dict] | None = None,
    device: str = "cpu",
) -> dict[str, object]:
    """Measure every planner x precision on ``device``; returns a dict of figures (see module docstring)."""
    torch.set_num_threads(threads or usable_cpus())
    model = make_model(obs_dim, act_dim, hidden).to(device)
    predict, reward = delta_predict(model), cheetah_like_reward()
    flop_per_eval = 2 * model_macs(model)
    peak = matmul_gflops(device=device)
    low, high = -torch.ones(act_dim, device=device), torch.ones(act_dim, device=device)
    obs = torch.randn(num_envs, obs_dim, generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    fp32_ms: dict[str, float] = {}
    flops = (flop_per_eval, peak)
    for name in planners:
        for precision in precisions:
            options = dict((planner_options or {}).get(name, {}))
            planner = make_planner(
                name,
                low,
                high,
                num_envs=num_envs,
                seed=0,
                horizon=horizon,
                device=device,
                num_candidates=num_candidates,
                precision=precision,
                **options,
            )
            evals = getattr(planner, "samples_per_plan", num_candidates) * horizon * num_envs
            row, plan_ms = _planner_row(planner, name, precision, predict, reward, obs, repeats, warmup, evals, flops)
            if precision == "fp32":
                fp32_ms[name] = plan_ms
            elif name in fp32_ms:
                row["speedup_vs_fp32"] = round(fp32_ms[name] / plan_ms, 2)
            rows.append(row)
    starts = torch.randn(4, obs_dim, generator=torch.Generator().manual_seed(1)).to(device)
    agreement = bf16_agreement(predict, reward, starts, low, high, horizon=horizon, num_candidates=num_candidates)
    # Without the control cost (exact in fp32 and dominant for an untrained model), the
    # ranking depends on the model alone: the harder check.
    agreement_model_only = bf16_agreement(
        predict, cheetah_like_reward(ctrl_cost=0.0), starts, low, high, horizon=horizon, num_candidates=num_candidates
    )
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "matmul_gflops_fp32": round(peak, 1),
        "model": f"MLP {obs_dim}+{act_dim} -> {'x'.join(map(str, hidden))} -> {obs_dim} ReLU",
        "flop_per_eval": flop_per_eval,
        "N": num_candidates,
        "H": horizon,
        "E": num_envs,
        "rows": rows,
        "bf16_agreement_random_mlp": agreement,
        "bf16_agreement_random_mlp_no_ctrl_cost": agreement_model_only,
    }


def _planner_row(
    planner: Planner,
    name: str,
    precision: str,
    predict: PredictFn,
    reward: RewardFn,
    obs: torch.Tensor,
    repeats: int,
    warmup: int,
    evals: int,
    flops: tuple[int, float],
) -> tuple[dict[str, object], float]:
    """One planner x precision, timed beside its ``evals`` model evaluations alone and beside the
    same plan on plain ``addmm``: its row and its plan time (ms). ``flops``: a model evaluation's
    FLOP and the process's fp32 matmul rate (GFLOP/s)."""
    flop_per_eval, peak = flops

    def plan() -> None:
        planner.plan(predict, reward, obs)

    def plan_addmm() -> None:
        with onednn.disabled():
            plan()

    plan_ms, alone_ms, addmm_ms = interleaved_median_ms(
        [plan, model_only_fn(predict, planner, obs), plan_addmm], rounds=repeats, repeats=1, warmup=warmup
    )
    evals_per_s = evals / (plan_ms * 1e-3)
    gflops = evals_per_s * flop_per_eval / 1e9
    row: dict[str, object] = {
        "planner": name,
        "precision": precision,
        "plan_ms": round(plan_ms, 2),
        "model_only_ms": round(alone_ms, 2),
        "evals_per_plan": evals,
        "evals_per_s": round(evals_per_s),
        "gflops": round(gflops, 1),
        "fraction_of_fp32_matmul": round(gflops / peak, 3),
        "plan_efficiency": round(alone_ms / plan_ms, 3),
        "addmm_plan_ms": round(addmm_ms, 2),
        "onednn_speedup": round(addmm_ms / plan_ms, 2),
    }
    return row, plan_ms


def _print_table(result: dict[str, object]) -> None:
    print(
        f"threads={result['threads']}  fp32 matmul={result['matmul_gflops_fp32']} GFLOP/s  {result['model']}  "
        f"N={result['N']} H={result['H']} E={result['E']}"
    )
    cols = [
        "planner",
        "precision",
        "plan_ms",
        "model_only_ms",
        "evals_per_plan",
        "evals_per_s",
        "gflops",
        "fraction_of_fp32_matmul",
        "plan_efficiency",
        "speedup_vs_fp32",
        "onednn_speedup",
    ]
    print("  ".join(f"{c:>14s}" for c in cols))
    for row in result["rows"]:
        print("  ".join(f"{str(row.get(c, '')):>14s}" for c in cols))
    print("bf16 vs fp32 ranking on a random MLP (4 start states):", result["bf16_agreement_random_mlp"])
    print("  same, reward without control cost:", result["bf16_agreement_random_mlp_no_ctrl_cost"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planners", default=",".join(PLANNER_NAMES))
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("-N", "--num-candidates", type=int, default=500)
    parser.add_argument("-H", "--horizon", type=int, default=10)
    parser.add_argument("-E", "--num-envs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    result = run(
        planners=args.planners.split(","),
        precisions=args.precisions.split(","),
        num_candidates=args.num_candidates,
        horizon=args.horizon,
        num_envs=args.num_envs,
        repeats=args.repeats,
        threads=args.threads or None,
    )
    _print_table(result)


def bf16_agreement_on_run(
    run_dir: str, num_states: int = 8, horizon: int = 10, num_candidates: int = 500
) -> dict[str, object]:
    """:func:`bf16_agreement` with the trained (unadapted) model of a run, from stored states.

    A trained model moves the state, unlike a random one, so this is the check that counts.
    An ensemble is checked on its members' mean prediction: its sampled one would draw other
    noise for each precision and compare the noise (measured: Spearman 0.2-0.4 on a PE-TS run).
    """
    from learn2adapt.envs import make_env  # noqa: PLC0415  (only this check needs envs and runs)
    from learn2adapt.run.state import load_run  # noqa: PLC0415

    st = load_run(Path(run_dir))
    env = make_env(st.cfg.env)
    idx = torch.linspace(0, len(st.buffer) - 1, num_states).long()
    obs = torch.as_tensor(st.buffer.obs[idx.numpy()])
    predict = st.rule.mean_predictor(None)
    low = torch.as_tensor(env.action_space.low)
    high = torch.as_tensor(env.action_space.high)
    out = bf16_agreement(predict, env.unwrapped.reward_fn, obs, low, high, horizon, num_candidates)
    env.close()
    return {"run": str(run_dir), "algo": st.cfg.algo, "env": st.cfg.env, **out}


if __name__ == "__main__":
    main()
