"""Pendulum swing-up whose mass and length vary per task (CaDM's Pendulum family).

Physics, observation, action and reward are Gymnasium's ``Pendulum-v1``
(re-implemented in numpy so the parameters can change at any step):

- observation ``[cos th, sin th, thdot]``; action: torque in ``[-2, 2]``;
- reward ``-(th^2 + 0.1 thdot^2 + 0.001 u^2)`` on the state *before* the step, with
  ``th`` normalised to ``[-pi, pi)`` and ``u`` clipped: it is a function of
  ``(obs, act)``, so :meth:`PendulumVariedEnv.reward_fn` is exact;
- task ``{"mass": m, "length": l}``: multipliers of the nominal mass 1 kg and
  length 1 m. Train: both in [0.75, 1.25]; test: each in [0.2, 0.4] or [1.6, 1.8].
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from learn2adapt.envs.param_space import ParamSpace, ParamTaskEnv, ScaleParam
from learn2adapt.envs.task_env import Task

PENDULUM_SPACE = ParamSpace(
    [
        ScaleParam("mass", train=(0.75, 1.25), test=((0.2, 0.4), (1.6, 1.8))),
        ScaleParam("length", train=(0.75, 1.25), test=((0.2, 0.4), (1.6, 1.8))),
    ],
    test_listing="product",
)


class PendulumVariedEnv(ParamTaskEnv, gym.Env):
    """Gymnasium's Pendulum with task-dependent mass and length (see module docstring).

    Args:
        render_mode: ``None`` or ``"rgb_array"``.
        task: initial task (default: nominal, mass = length = 1).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    param_space = PENDULUM_SPACE
    max_speed = 8.0
    max_torque = 2.0
    dt = 0.05
    g = 10.0

    def __init__(self, render_mode: str | None = None, task: Task | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-self.max_torque, self.max_torque, shape=(1,), dtype=np.float32)
        self.state = np.zeros(2)
        self._obs = self._get_obs()
        self.last_u = 0.0
        self.set_task(task if task is not None else self.nominal_task())

    def _apply_task(self, task: Task) -> None:
        self.m = task["mass"]
        self.l = task["length"]

    def _get_obs(self) -> np.ndarray:
        th, thdot = self.state
        return np.array([np.cos(th), np.sin(th), thdot], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.state = self.np_random.uniform(low=[-np.pi, -1.0], high=[np.pi, 1.0])
        self.last_u = 0.0
        self._obs = self._get_obs()
        return self._obs, {"task": dict(self.task)}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        # Scalar math (not numpy) keeps the step cheaper than Gymnasium's own Pendulum.
        th, thdot = float(self.state[0]), float(self.state[1])
        u = min(max(float(action[0]), -self.max_torque), self.max_torque)
        self.last_u = u
        # The reward is taken from the float32 observation (not the float64 state) so that
        # reward_fn, which only sees observations, reproduces it.
        obs = self._obs
        th_obs = math.atan2(float(obs[1]), float(obs[0]))
        cost = th_obs * th_obs + 0.1 * float(obs[2]) ** 2 + 0.001 * u * u
        newthdot = thdot + (3 * self.g / (2 * self.l) * math.sin(th) + 3.0 / (self.m * self.l**2) * u) * self.dt
        newthdot = min(max(newthdot, -self.max_speed), self.max_speed)
        newth = th + newthdot * self.dt
        self.state = np.array([newth, newthdot])
        self._obs = np.array([math.cos(newth), math.sin(newth), newthdot], dtype=np.float32)
        return self._obs, -cost, False, False, {"task": dict(self.task)}

    def reward_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        th = torch.atan2(obs[..., 1], obs[..., 0])
        u = act[..., 0].clamp(-self.max_torque, self.max_torque)
        return -(th**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * u**2)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from learn2adapt.envs.sketch import Canvas

        canvas = Canvas(300, 300, extent=2.2 * max(1.0, self.l))
        tip = (self.l * np.sin(self.state[0]), self.l * np.cos(self.state[0]))
        canvas.segment((0.0, 0.0), tip, width=0.08, color=(204, 77, 77))
        canvas.disk((0.0, 0.0), 0.05, color=(0, 0, 0))
        canvas.disk(tip, 0.06 * np.sqrt(self.m), color=(60, 60, 60))
        return canvas.image
