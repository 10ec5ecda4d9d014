"""Cart-pole balancing with a continuous force and task-dependent force gain and pole length.

Physics are Gymnasium's ``CartPole-v1`` (Barto et al. 1983, Euler integration,
``tau = 0.02``), re-implemented in numpy with two changes so a model-based
controller can use it:

- continuous action ``a`` in ``[-1, 1]``; the applied force is ``a * force`` where
  ``force`` (N) is a task parameter (Gymnasium: two discrete actions, +-10 N);
- a dense reward computable from the next observation: while alive,
  ``1 - 0.5 (theta'/theta_max)^2 - 0.5 (x'/x_max)^2`` (in [0, 1]; 1 when centred and
  upright), so random-shooting MPC gets a signal before the pole falls. The episode
  terminates, as in Gymnasium, when ``|x'| > 2.4`` or ``|theta'| > 12 deg``; the
  terminating step's reward uses the same formula (slightly negative).

Observation ``[x, x_dot, theta, theta_dot]``. Task ``{"force": f, "length": l}``:
``l`` is Gymnasium's ``length`` (half the pole length, nominal 0.5 m). Train:
force in [5, 15], length in [0.4, 0.6]; test: force in [2.5, 4] or [16, 18], length
in [0.25, 0.35] or [0.65, 0.75] (both parameters outside their training range).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from learn2adapt.envs.param_space import ParamSpace, ParamTaskEnv, ScaleParam
from learn2adapt.envs.task_env import Task

CARTPOLE_SPACE = ParamSpace(
    [
        ScaleParam("force", train=(5.0, 15.0), test=((2.5, 4.0), (16.0, 18.0)), nominal=10.0),
        ScaleParam("length", train=(0.4, 0.6), test=((0.25, 0.35), (0.65, 0.75)), nominal=0.5),
    ],
    test_listing="product",
)


class CartPoleVariedEnv(ParamTaskEnv, gym.Env):
    """Continuous-action cart-pole with task-dependent force gain and pole length.

    Args:
        render_mode: ``None`` or ``"rgb_array"``.
        task: initial task (default: nominal, force 10 N, length 0.5 m).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    param_space = CARTPOLE_SPACE
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    tau = 0.02
    x_threshold = 2.4
    theta_threshold = 12 * 2 * np.pi / 360

    def __init__(self, render_mode: str | None = None, task: Task | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        # Observation bounds: twice the termination limits, like Gymnasium.
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold * 2, np.inf], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._s = (0.0, 0.0, 0.0, 0.0)
        self.set_task(task if task is not None else self.nominal_task())

    def _apply_task(self, task: Task) -> None:
        self.force_mag = task["force"]
        self.length = task["length"]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        x, x_dot, theta, theta_dot = (float(v) for v in self.np_random.uniform(low=-0.05, high=0.05, size=(4,)))
        self._s = (x, x_dot, theta, theta_dot)
        return np.array(self._s, dtype=np.float32), {"task": dict(self.task)}

    @property
    def state(self) -> np.ndarray:
        """``[x, x_dot, theta, theta_dot]`` in float64 (kept as Python floats for speed)."""
        return np.array(self._s)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        # Scalar math (not numpy) keeps the step as cheap as Gymnasium's own CartPole.
        x, x_dot, theta, theta_dot = self._s
        force = min(max(float(action[0]), -1.0), 1.0) * self.force_mag
        costheta, sintheta = math.cos(theta), math.sin(theta)
        total_mass = self.masscart + self.masspole
        polemass_length = self.masspole * self.length
        temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        self._s = (
            x + self.tau * x_dot,
            x_dot + self.tau * xacc,
            theta + self.tau * theta_dot,
            theta_dot + self.tau * thetaacc,
        )
        obs = np.array(self._s, dtype=np.float32)
        # Reward and termination from the float32 observation, exactly as reward_fn sees it.
        ox, oth = float(obs[0]), float(obs[2])
        reward = 1.0 - 0.5 * (oth / self.theta_threshold) ** 2 - 0.5 * (ox / self.x_threshold) ** 2
        terminated = abs(ox) > self.x_threshold or abs(oth) > self.theta_threshold
        return obs, reward, terminated, False, {"task": dict(self.task)}

    def reward_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        x, th = next_obs[..., 0], next_obs[..., 2]
        return 1.0 - 0.5 * (th / self.theta_threshold) ** 2 - 0.5 * (x / self.x_threshold) ** 2

    def termination_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return (next_obs[..., 0].abs() > self.x_threshold) | (next_obs[..., 2].abs() > self.theta_threshold)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from learn2adapt.envs.sketch import Canvas

        x, _, theta, _ = self.state
        canvas = Canvas(480, 320, extent=1.6, center=(float(np.clip(x, -1.5, 1.5)), 0.6))
        canvas.box((-10.0, -0.02), (10.0, 0.0), color=(0, 0, 0))
        canvas.box((x - 0.25, 0.0), (x + 0.25, 0.2), color=(60, 60, 60))
        tip = (x + 2 * self.length * np.sin(theta), 0.2 + 2 * self.length * np.cos(theta))
        canvas.segment((x, 0.2), tip, width=0.05, color=(202, 152, 101))
        return canvas.image
