"""Short closed-loop probes of a trained model-based run on its family's nominal task.

A diagnosis, not an evaluation: from a reset, the run's controller (its model and planner, on
the CPU) acts for ``--steps`` steps, once per ``--seeds`` seed, and each episode's mean forward
velocity (at step ends, as the reward reads it) and root displacement over time are printed.
Optionally the model is first refitted from scratch on the run's own data with other options
(``--refit KEY=VALUE ...``), or an ensemble plans with its members' means instead of sampling
(``--no-noise``). Used for results/pets/nominal-gpu/::

    .venv/bin/python scripts/probe_nominal_control.py runs/pets-nominal-pe-s1 --seeds 1 2 3
    .venv/bin/python scripts/probe_nominal_control.py runs/pets-nominal-pe-s1 --refit model.nll_beta=0.5

``--optimism EVERY``: every EVERY steps, the sequence the planner settled on (CEM's final mean,
its first action the one taken) is rolled out twice from the current state, by the model (an
ensemble: its members' mean) and by the simulator (MuJoCo state saved and restored), and the
mean forward velocity of each over the first 5 steps and the whole horizon is printed: how far
the model's promise for its own plan is from what the robot does (results/pets/nominal-cpu/).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch

from learn2adapt.envs.catalog import make_env
from learn2adapt.models.ensemble import EnsembleDynamics
from learn2adapt.run.build import build_rule, mpc_agent
from learn2adapt.run.options import apply_overrides
from learn2adapt.run.state import load_run


def own_data_error(model: Any, buffer: Any) -> float:
    """One-step error of the (members' mean) prediction on the run's data, normalised state change."""
    obs, act, nxt = (
        torch.as_tensor(np.asarray(getattr(buffer, k)), dtype=torch.float32) for k in ("obs", "act", "next_obs")
    )
    with torch.no_grad():
        return float(model.loss(obs, act, nxt))


def record_plans(planner: Any) -> list[torch.Tensor]:
    """The list every step's final plan ``(H, act_dim)`` of environment 0 is appended to (before
    the planner shifts it for its warm start)."""
    plans: list[torch.Tensor] = []
    store = planner._store_shifted

    def keep(mean: torch.Tensor) -> None:
        plans.append(mean[0].clone())
        store(mean)

    planner._store_shifted = keep
    return plans


def plan_promise(agent: Any, base: Any, obs: np.ndarray, first: np.ndarray, plan: torch.Tensor) -> tuple[float, ...]:
    """Mean forward velocity of the plan ``(H, act_dim)`` (first action ``first``) by the model and
    by the simulator, over its first 5 steps and over the horizon: (model 5, sim 5, model H, sim H)."""
    plan = plan.clone()
    plan[0] = torch.as_tensor(first)
    model, vel = agent.rule.model, base.reward_spec.vel_index
    step = model.predict_mean if isinstance(model, EnsembleDynamics) else agent.predictor()
    state, predicted = torch.as_tensor(obs, dtype=torch.float32)[None, None], []
    with torch.no_grad():
        for a in plan:
            state = step(state, a[None, None].float())
            predicted.append(float(state[0, 0, vel]))
    kind = mujoco.mjtState.mjSTATE_FULLPHYSICS
    saved = np.empty(mujoco.mj_stateSize(base.model, kind))
    mujoco.mj_getState(base.model, base.data, saved, kind)
    simulated = []
    for a in plan.numpy():
        base.do_simulation(a, base.frame_skip)
        simulated.append(float(base.data.qvel[0]))
    mujoco.mj_setState(base.model, base.data, saved, kind)
    mujoco.mj_forward(base.model, base.data)
    return tuple(float(np.mean(v)) for v in (predicted[:5], simulated[:5], predicted, simulated))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--refit",
        nargs="*",
        default=None,
        metavar="KEY=VALUE",
        help="refit from scratch first, with these fit/model options",
    )
    parser.add_argument(
        "--refit-seed", type=int, default=0, help="seed of the refit (initialisation, bootstrap, batches)"
    )
    parser.add_argument(
        "--no-noise", action="store_true", help="an ensemble plans with its members' means (no sampling)"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="test-time options, e.g. planner.num_candidates=200"
    )
    parser.add_argument(
        "--optimism",
        type=int,
        default=0,
        metavar="EVERY",
        help="every EVERY steps, the plan's velocity by the model against the simulator (CEM, iCEM, MPPI)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.optimism < 0:
        parser.error("--optimism takes a number of steps >= 1 (0: off)")
    st = load_run(args.run_dir)
    cfg = apply_overrides(copy.deepcopy(st.cfg), ["device=cpu", "planner.cuda_graph=false", *args.set])
    env = make_env(cfg.env, max_episode_steps=args.steps)
    rule: Any = st.rule
    if args.refit is not None:
        cfg = apply_overrides(cfg, args.refit)
        torch.manual_seed(args.refit_seed)
        rule = build_rule(cfg, env)
        metrics = rule.fit(st.buffer, np.random.default_rng(args.refit_seed), progress=False)
        print(
            f"refit {args.refit} (seed {args.refit_seed}): "
            f"{metrics['fit/epochs']:.0f} epochs, {metrics['fit/steps']:.0f} steps"
        )
    model = rule.model
    print(f"one-step error on the run's own data: {own_data_error(model, st.buffer):.4f}")
    if args.no_noise:
        if not isinstance(model, EnsembleDynamics):
            parser.error("--no-noise is for ensembles (model.ensemble >= 2)")
        model.sample = lambda out, generator=None: model.gaussian(out)[0]  # type: ignore[method-assign]  # the members' means
    base: Any = env.unwrapped
    vel_index = base.reward_spec.vel_index
    for seed in args.seeds:
        obs, _ = env.reset(seed=seed, options={"task": base.nominal_task()})
        agent = mpc_agent(cfg, rule, env, 1, seed)
        agent.reset(0)
        if args.optimism and not hasattr(agent.planner, "_store_shifted"):
            parser.error("--optimism reads the plan of CEM, iCEM or MPPI; random shooting keeps none")
        plans = record_plans(agent.planner) if args.optimism else []
        promises = []
        x0, velocities, ret, t0 = float(base.data.qpos[0]), [], 0.0, time.time()
        for t in range(args.steps):
            act = agent.act(obs[None])[0]
            if args.optimism and t % args.optimism == 0:
                promises.append(plan_promise(agent, base, obs, act, plans[-1]))
            nxt, reward, terminated, truncated, _ = env.step(act)
            agent.observe(obs[None], act[None], nxt[None])
            obs, ret = nxt, ret + float(reward)
            velocities.append(float(obs[vel_index]))
            if terminated or truncated:
                break
        displacement = (float(base.data.qpos[0]) - x0) / (len(velocities) * base.dt)
        print(
            f"seed {seed}: {len(velocities)} steps, mean velocity {np.mean(velocities):.3f} m/s, "
            f"displacement / time {displacement:.3f} m/s, return {ret:.1f} ({time.time() - t0:.0f} s)",
            flush=True,
        )
        if promises:
            m5, s5, mh, sh = np.mean(promises, axis=0)
            print(
                f"  its plans over {len(promises)} states: 5 steps model {m5:+.2f} / simulator {s5:+.2f} m/s, "
                f"horizon model {mh:+.2f} / simulator {sh:+.2f} m/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
