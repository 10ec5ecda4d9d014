"""The PETS planning workload, to compare with mbrl-lib's planners on the same machine.

mbrl-lib's PETS half-cheetah defaults (Pineda et al., 2021): a probabilistic ensemble of 5
members, MLP 4 x 200 with SiLU; trajectory sampling with 20 particles bound to members
(TS-inf); CEM with 5 iterations of 400 candidates (40 elites), horizon 30. One plan is then
5 x 400 x 20 x 30 = 1.2M member evaluations. ``pets_cem_plan_ms`` (fp32) and
``pets_cem_bf16_plan_ms`` time :class:`~learn2adapt.planning.cem.CEM` planning with
:class:`~learn2adapt.models.ensemble.EnsembleDynamics` (untrained weights: the cost does not
depend on them) for one environment, half-cheetah sizes (obs 17, act 6).

mbrl-lib's other two planners on the same model and particles, with its half-cheetah
settings: ``pets_mppi_*`` MPPI, 5 iterations of 350 candidates, noise filter beta 0.9;
``pets_icem_*`` iCEM, 5 iterations from 400 candidates shrinking by 1.3 per iteration, 40
elites of which 30% are carried on, coloured noise beta 2 (``pets_icem_evals_per_plan``: the
member evaluations it makes, fewer than CEM's). On a GPU, ``pets_cem_graph_plan_ms`` times CEM
with ``planner.cuda_graph`` (:mod:`learn2adapt.planning.cuda_graph`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from learn2adapt.benchmarks.timing import interleaved_median_ms, matmul_gflops
from learn2adapt.benchmarks.workload import cheetah_like_reward
from learn2adapt.cpus import usable_cpus
from learn2adapt.models.config import ModelConfig
from learn2adapt.models.ensemble import EnsembleDynamics
from learn2adapt.planning import make_planner
from learn2adapt.planning.base import Planner

MEMBERS, PARTICLES, HIDDEN = 5, 20, [200, 200, 200, 200]
ITERATIONS, CANDIDATES, ELITES, HORIZON = 5, 400, 40, 30
OBS, ACT = 17, 6


def run(
    device: str = "cpu",
    repeats: int = 3,
    threads: int | None = None,
    candidates: int = CANDIDATES,
    particles: int = PARTICLES,
    horizon: int = HORIZON,
    hidden: list[int] | None = None,
) -> dict[str, object]:
    """The module docstring's figures (smaller sizes for tests only)."""
    torch.set_num_threads(threads or usable_cpus())
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=hidden or HIDDEN, activation="silu", ensemble=MEMBERS)
    model = EnsembleDynamics(OBS, ACT, cfg).to(device)
    reward = cheetah_like_reward()
    obs = torch.randn(1, OBS, generator=torch.Generator().manual_seed(0)).to(device)
    low, high = -torch.ones(ACT, device=device), torch.ones(ACT, device=device)
    out: dict[str, object] = {
        "pets_workload": f"{MEMBERS} members MLP {'x'.join(map(str, cfg.hidden))} SiLU, {particles} particles "
        f"(TS-inf), CEM {ITERATIONS} x {candidates} (elites {min(ELITES, candidates)}), H = {horizon}",
        "pets_evals_per_plan": ITERATIONS * candidates * particles * horizon,
        "pets_matmul_gflops_fp32": round(matmul_gflops(device=device), 1),
    }
    planners: dict[str, dict[str, Any]] = {
        "cem": {"iterations": ITERATIONS, "elites": min(ELITES, candidates)},
        "mppi": {"iterations": ITERATIONS, "smoothing": 0.9, "num_candidates": max(1, candidates * 7 // 8)},
        "icem": {
            "iterations": ITERATIONS,
            "elites": min(ELITES, candidates),
            "population_decay": 1.3,
            "keep_elites": 0.3,
            "noise_beta": 2.0,
        },
    }
    plans = {}
    for name, options in planners.items():
        for precision in ("fp32", "bf16"):
            kwargs: dict[str, Any] = {
                "horizon": horizon,
                "num_candidates": candidates,
                "particles": particles,
                "precision": precision,
            }
            planner = make_planner(name, low, high, num_envs=1, seed=0, device=device, **{**kwargs, **options})
            plans[f"pets_{name}_plan_ms" if precision == "fp32" else f"pets_{name}_bf16_plan_ms"] = planner
    if torch.device(device).type == "cuda":  # CEM with its rollouts replayed from a CUDA graph
        plans["pets_cem_graph_plan_ms"] = make_planner(
            "cem", low, high, num_envs=1, seed=0, device=device, horizon=horizon, num_candidates=candidates,
            particles=particles, precision="fp32", cuda_graph=True, **planners["cem"],
        )  # fmt: skip

    def timed(planner: Planner) -> Callable[[], object]:
        def plan() -> object:
            with torch.no_grad():
                return planner.plan(model.predict, reward, obs)

        return plan

    times = interleaved_median_ms([timed(p) for p in plans.values()], rounds=repeats, repeats=1, warmup=1)
    out.update({key: round(ms, 1) for key, ms in zip(plans, times)})
    out["pets_icem_evals_per_plan"] = plans["pets_icem_plan_ms"].samples_per_plan * particles * horizon
    return out
