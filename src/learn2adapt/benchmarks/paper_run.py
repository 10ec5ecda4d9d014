"""Projected wall time of a GrBAL ``paper`` run on this machine, and its planning floor.

The sizes come from the ``paper`` preset of HalfCheetahDisabledJoint (GrBAL): MLP
512x3, random shooting N = 500, H = 10 at the preset's planner precision, 5
environments planned at once, 5 + 50 x 5 episodes of 1000 steps, meta-batch 10,
M = K = 16. Measured here: ``adapt_plan_ms`` (one online adaptation of the 5
environments plus one plan for all of them), ``env_step_ms`` (one environment step),
``meta_step_ms`` (one second-order meta-training step with its Adam update, at the
preset's ``fit.precision``; ``meta_step_bf16_ms`` the same under bf16 autocast, for
comparison) and ``val_ms`` (one validation pass over the fit's fixed validation segments).

Formulas (``S`` = MPC steps = iterations x episodes x length, ``S0`` = random steps,
``E`` = environments planned at once, ``D_i`` = transitions after iteration ``i``,
``f`` = 1 - fit.val_fraction, ``B`` = meta-batch, ``L`` = M + K):

* ``paper_run_floor_min`` = S x N x H x (FLOP of one model evaluation) / (measured
  matmul rate at the planner's precision): the planning arithmetic alone;
* ``paper_run_projected_min`` = (S / E) x adapt_plan_ms + (S + S0) x env_step_ms
  + sum over the iterations + 1 fits of ``n_i`` x meta_step_ms + ``v_i`` x val_ms, where the epoch
  has ``s_i = floor(f D_i / (B L))`` meta-steps, a fit ``n_i = epochs_per_fit x s_i``
  of them and ``v_i = n_i / s_i`` validations (one per epoch); when a step budget
  ``fit.max_steps`` cuts a fit short, ``n_i = fit.max_steps`` and ``v_i = ceil(n_i / s_i)``
  (the budget's last validation included); ``epochs_per_fit`` is the mean number of epochs of a fit (early
  stopping decides it; :data:`EPOCHS_PER_FIT` is the mean measured in our paper run).

Other settings of the run are projected with ``--set`` (any option of the preset, e.g.
``learn2adapt bench --only paper_run --set fit.precision=bf16 --set fit.max_steps=1500``): the
measured figures then use the changed config, and ``paper_overrides`` lists the changes.

Run: ``learn2adapt bench --only paper_run``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from learn2adapt.adaptation.base import adam
from learn2adapt.adaptation.grbal import VAL_CHUNK, VAL_SEGMENTS, GrBAL
from learn2adapt.benchmarks.timing import interleaved_median_ms, matmul_gflops, median_ms
from learn2adapt.benchmarks.workload import random_recent
from learn2adapt.envs import make_env
from learn2adapt.models.config import FitConfig
from learn2adapt.models.fitting import training_autocast
from learn2adapt.run.build import build_planner, build_rule
from learn2adapt.run.config import RunConfig
from learn2adapt.run.options import apply_overrides
from learn2adapt.run.presets import preset_config
from learn2adapt.types import Window

ENV = "learn2adapt/HalfCheetahDisabledJoint-v0"
#: Mean epochs per fit of the measured GrBAL paper run (docs/experiments.md).
EPOCHS_PER_FIT = 8.3


def paper_config(overrides: Sequence[str] = (), device: str = "cpu") -> RunConfig:
    """The projected run's config: the GrBAL ``paper`` preset with ``overrides`` (``key=value``), validated."""
    cfg = apply_overrides(preset_config(ENV, "paper", "grbal"), overrides)
    cfg.device = device
    return cfg.validate()


def project_seconds(
    cfg: RunConfig,
    adapt_plan_ms: float,
    env_step_ms: float,
    meta_step_ms: float,
    val_ms: float,
    flop_per_eval: int,
    matmul_gflops: float,
    epochs_per_fit: float = EPOCHS_PER_FIT,
) -> tuple[float, float, float]:
    """The formulas of the module docstring: (collection, fits, planning floor) in seconds for ``cfg``."""
    adapt = cfg.adaptation
    random_steps = cfg.random_episodes * cfg.episode_length
    per_iteration = cfg.episodes_per_iteration * cfg.episode_length
    mpc_steps = cfg.iterations * per_iteration
    floor_s = mpc_steps * cfg.planner.num_candidates * cfg.planner.horizon * flop_per_eval / (matmul_gflops * 1e9)
    collect_s = mpc_steps / cfg.num_envs * adapt_plan_ms / 1e3 + (mpc_steps + random_steps) * env_step_ms / 1e3
    fit_s = 0.0
    for i in range(cfg.iterations + 1):
        data = random_steps + i * per_iteration
        epoch = max(1, int((1 - cfg.fit.val_fraction) * data) // (adapt.meta_batch * (adapt.past + adapt.future)))
        steps, validations = epochs_per_fit * epoch, epochs_per_fit
        if cfg.fit.max_steps and steps > cfg.fit.max_steps:
            # the budget ends the fit inside an epoch, with one more validation there
            steps, validations = cfg.fit.max_steps, math.ceil(cfg.fit.max_steps / epoch)
        fit_s += (steps * meta_step_ms + validations * val_ms) / 1e3
    return collect_s, fit_s, floor_s


def run(
    epochs_per_fit: float = EPOCHS_PER_FIT, rounds: int = 5, device: str = "cpu", overrides: Sequence[str] = ()
) -> dict[str, object]:
    """Measure the figures of the module docstring on ``device`` and project the run (the preset
    changed by ``overrides``); returns them by name."""
    cfg = paper_config(overrides, device)
    env = make_env(cfg.env)
    rule = build_rule(cfg, env)
    assert isinstance(rule, GrBAL)
    obs_dim, act_dim, E = rule.obs_dim, rule.act_dim, cfg.num_envs
    adapt = cfg.adaptation
    g = torch.Generator().manual_seed(0)
    planner = build_planner(cfg, env, E, seed=0)
    obs = torch.randn(E, obs_dim, generator=g).to(device)
    recent = random_recent(E, adapt.past, obs_dim, act_dim, g, device)
    reward = env.unwrapped.reward_fn
    termination = getattr(env.unwrapped, "termination_fn", None)

    def adapt_plan() -> None:
        planner.plan(rule.predictor(recent), reward, obs, termination)

    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(env.action_space.low, env.action_space.high, (100, act_dim)).astype(np.float32)

    def env_steps() -> None:  # 100 steps; episodes of the paper preset are 1000 long
        for a in actions:
            env.step(a)

    length = adapt.past + adapt.future
    seg = [torch.randn(adapt.meta_batch, length, d, generator=g).to(device) for d in (obs_dim, act_dim, obs_dim)]
    opt = adam(rule.module.parameters(), 0.0, rule.device)  # the fits' Adam; lr 0: keep weights

    def meta_step(fit: FitConfig) -> None:
        opt.zero_grad(set_to_none=True)
        with training_autocast(fit, torch.device(device).type):
            loss = rule.meta_loss(seg[0], seg[1], seg[2])
        loss.backward()
        opt.step()

    bf16 = FitConfig(precision="bf16")
    plan_ms, steps_ms, meta_ms, meta_bf16_ms = interleaved_median_ms(
        [adapt_plan, env_steps, lambda: meta_step(cfg.fit), lambda: meta_step(bf16)], rounds, [2, 1, 5, 5]
    )
    val_batches = [
        Window(*(torch.randn(VAL_CHUNK, length, d, generator=g).to(device) for d in (obs_dim, act_dim, obs_dim)))
    ]
    val_ms = median_ms(lambda: rule.validation_losses(val_batches), repeats=3, warmup=1) * VAL_SEGMENTS / VAL_CHUNK
    env.close()

    precision = torch.bfloat16 if planner.precision == "bf16" else torch.float32
    rate = matmul_gflops(dtype=precision, device=device)
    flop_per_eval = 2 * sum(p.numel() for name, p in rule.model.params().items() if name.startswith("w"))
    collect_s, fit_s, floor_s = project_seconds(
        cfg, plan_ms, steps_ms / 100, meta_ms, val_ms, flop_per_eval, rate, epochs_per_fit
    )
    return {
        "paper_adapt_plan_ms": round(plan_ms, 2),
        "paper_env_step_ms": round(steps_ms / 100, 4),
        "paper_meta_step_ms": round(meta_ms, 2),
        "paper_meta_step_bf16_ms": round(meta_bf16_ms, 2),
        "paper_fit_precision": cfg.fit.precision,
        "paper_fit_max_steps": cfg.fit.max_steps,
        "paper_overrides": " ".join(overrides) or "none",
        "paper_val_ms": round(val_ms, 1),
        "paper_matmul_gflops": round(rate, 1),
        "paper_planner_precision": planner.precision,
        "paper_epochs_per_fit": epochs_per_fit,
        "paper_run_collect_min": round(collect_s / 60, 1),
        "paper_run_fit_min": round(fit_s / 60, 1),
        "paper_run_projected_min": round((collect_s + fit_s) / 60, 1),
        "paper_run_floor_min": round(floor_s / 60, 1),
    }
