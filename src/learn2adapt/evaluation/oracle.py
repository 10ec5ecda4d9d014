"""The oracle controller: MPC with the simulator itself as the model (a diagnosis, not a method).

A learned controller's return mixes two losses: the planner's (a finite number of
candidates over a finite horizon) and the model's. Planning with the true dynamics, with
the same planner and settings, removes the second: the gap between the oracle and a
learned model is the return lost to model error, and a low oracle return says the planner
or the budget, not the model, is what limits the controller.

At every control step each candidate sequence is simulated from the environment's exact
current MuJoCo state (``mj_getState``, full physics) under the task in force (the live,
task-edited ``MjModel``, so mid-episode switches are followed), ``frame_skip`` substeps per
action, with MuJoCo's multi-threaded ``rollout``; the planner scores the resulting
observations with the environment's own reward and termination, exactly as for a learned
model. MuJoCo families only (their observations are ``qpos[k:] ++ qvel[:n]``, checked at
construction). ``learn2adapt oracle`` evaluates it on the held-out tasks with the
evaluation protocol of ``learn2adapt eval`` (docs/experiments.md).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from mujoco import rollout

from learn2adapt.cpus import usable_cpus
from learn2adapt.envs.mujoco_base import MujocoTaskMixin, diverged
from learn2adapt.errors import ConfigError
from learn2adapt.planning.base import Planner
from learn2adapt.run.build import build_planner
from learn2adapt.run.config import RunConfig

#: The simulator state a rollout starts from: everything that determines the future.
STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS


def observation_layout(env: Any) -> tuple[int, int, int]:
    """``(k, nq, nv)`` with ``obs == qpos[k : k + nq] ++ qvel[:nv]``, checked on a few random states.

    Raises:
        ConfigError: the family's observation is not of that form.
    """
    rng = np.random.default_rng(0)
    model, data = env.model, mujoco.MjData(env.model)
    samples = []
    for _ in range(3):
        data.qpos[:] = env.init_qpos + rng.normal(0, 0.1, model.nq)
        data.qvel[:] = rng.normal(0, 0.5, model.nv)
        mujoco.mj_forward(model, data)
        saved = env.data
        env.data = data  # _get_obs reads self.data
        try:
            samples.append((np.array(env._get_obs()), data.qpos.copy(), data.qvel.copy()))
        finally:
            env.data = saved
    obs_dim = samples[0][0].shape[0]
    for k in range(3):
        for nv in range(min(obs_dim, model.nv), -1, -1):
            nq = obs_dim - nv
            if nq + k > model.nq:
                continue
            if all(np.allclose(o, np.concatenate([q[k : k + nq], v[:nv]]), atol=1e-5) for o, q, v in samples):
                return k, nq, nv
    raise ConfigError(f"{type(env).__name__}: the oracle needs observations of the form qpos[k:] ++ qvel")


def check_oracle(env_id: str) -> None:
    """``ConfigError`` unless the oracle can simulate ``env_id`` (before anything is trained)."""
    from learn2adapt.envs import make_env

    env = make_env(env_id)
    try:
        if not isinstance(env.unwrapped, MujocoTaskMixin):
            raise ConfigError(f"the oracle needs a MuJoCo family; {type(env.unwrapped).__name__} is not one")
        observation_layout(env.unwrapped)
    finally:
        env.close()


class SimulatorModel:
    """A planner's ``predict`` that simulates: every (environment, candidate) row keeps its full state.

    The planner calls ``predict(obs_t, act_t)`` for t = 0..H-1 with the observations the
    previous call returned; the state behind each returned tensor is remembered (with the
    tensor itself, so its identity is not reused), and any other ``obs`` (the planner's start
    buffer) starts from the environments' current states. :meth:`begin` forgets them.
    """

    def __init__(self, envs: Sequence[gym.Env], threads: int | None = None) -> None:
        self.envs: list[Any] = [e.unwrapped for e in envs]  # MuJoCo task envs (model, data)
        base = self.envs[0]
        if not isinstance(self.envs[0], MujocoTaskMixin):
            raise ConfigError(f"the oracle needs a MuJoCo family; {type(base).__name__} is not one")
        self.k, self.nq, self.nv = observation_layout(base)
        self.frame_skip = int(base.frame_skip)
        threads = threads or max(1, min(usable_cpus(), 8))
        self.datas = [mujoco.MjData(base.model) for _ in range(threads)]
        self.nstate = mujoco.mj_stateSize(base.model, STATE)
        self._states: dict[int, tuple[torch.Tensor, np.ndarray]] = {}
        self._nq_full, self._nv_full = base.model.nq, base.model.nv
        self.step_seconds = self.frame_skip * float(base.model.opt.timestep)

    def begin(self) -> None:
        """A new control step: the next ``predict`` of unknown ``obs`` starts from the live states."""
        self._states.clear()

    def _live_states(self) -> np.ndarray:
        out = np.empty((len(self.envs), self.nstate))
        for i, env in enumerate(self.envs):
            mujoco.mj_getState(env.model, env.data, out[i], STATE)
        return out

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        E, N = obs.shape[0], obs.shape[1]
        known = self._states.get(id(obs))
        start = known[1] if known is not None and known[0] is obs else np.repeat(self._live_states(), N, axis=0)
        ctrl = act.detach().float().reshape(E * N, 1, -1).cpu().numpy().astype(np.float64)
        models = [env.model for env in self.envs for _ in range(N)]
        states, _ = rollout.rollout(models, self.datas, start, np.repeat(ctrl, self.frame_skip, axis=1))
        last = states[:, -1]
        # FULLPHYSICS layout: time, qpos, qvel, ...
        qpos, qvel = last[:, 1 : 1 + self._nq_full], last[:, 1 + self._nq_full :]
        next_obs = np.concatenate([qpos[:, self.k : self.k + self.nq], qvel[:, : self.nv]], axis=1)
        # A candidate that blows the simulation up would score its huge velocity: NaN ranks it
        # last (the real environment would end that episode); it restarts from its start state.
        # MuJoCo resets a state whose acceleration it finds unstable, clock included: a clock
        # that did not advance by one control step gives that away.
        advanced = np.isclose(last[:, 0], start[:, 0] + self.step_seconds)
        bad = diverged(qvel[:, : self._nv_full]) | ~advanced
        if bad.any():
            next_obs[bad] = np.nan
            last[bad] = start[bad]
        out = torch.as_tensor(next_obs, dtype=torch.float32, device=obs.device).reshape(E, N, -1)
        self._states[id(out)] = (out, last)
        return out


class OracleAgent:
    """MPC over the simulator (rollout ``Policy`` protocol): the planner of the run's config."""

    online = None  # nothing adapted: the model is exact

    def __init__(self, envs: Sequence[gym.Env], planner: Planner) -> None:
        self.model = SimulatorModel(envs)
        self.planner = planner
        base: Any = envs[0].unwrapped
        self.reward_fn, self.termination_fn = base.reward_fn, getattr(base, "termination_fn", None)
        self.num_envs = len(envs)

    def reset(self, env_index: int) -> None:
        mask = torch.zeros(self.num_envs, dtype=torch.bool)
        mask[env_index] = True
        self.planner.reset(mask)

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.model.begin()
        with torch.no_grad():
            actions = self.planner.plan(
                self.model.predict, self.reward_fn, torch.as_tensor(obs, dtype=torch.float32), self.termination_fn
            )
        return actions.cpu().numpy()

    def observe(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        pass


@dataclass
class OracleRun:
    """What :func:`~learn2adapt.evaluation.protocol.evaluate` needs, for the oracle (nothing trained)."""

    cfg: RunConfig
    train_env_steps: int = 0
    iteration: int = 0

    def controller(self, envs: Sequence[gym.Env], seed: int) -> OracleAgent:
        # The oracle plans on the CPU, where the simulator runs; fp32 (no model to round); one
        # particle (the simulator is deterministic: more would repeat the same rollout).
        cfg = copy.deepcopy(self.cfg)
        cfg.device, cfg.planner.precision, cfg.planner.particles = "cpu", "fp32", 1
        return OracleAgent(envs, build_planner(cfg, envs[0], len(envs), seed))
