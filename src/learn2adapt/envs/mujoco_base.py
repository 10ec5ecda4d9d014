"""Shared machinery of the MuJoCo task families: observation-computable rewards and cheap task edits.

Gymnasium's locomotion rewards use the torso displacement over the step
(``(x_after - x_before) / dt``), which no observation contains. Our families use
the root x-velocity *after* the step instead (``qvel[0]``, part of every
observation here), so the planner's ``reward_fn`` reproduces ``step``'s reward
exactly. :class:`LocomotionReward` holds one robot's reward and health terms and
evaluates them on numpy arrays (in ``step``) and torch tensors (in ``reward_fn``)
with the same code.

Task edits write into the compiled ``MjModel`` (actuator gear, body mass, dof
damping, geom size...) from cached nominal copies, once per ``set_task``; nothing is
added to the per-step path.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import mujoco
import numpy as np
import torch

from learn2adapt.envs.param_space import ParamSpace
from learn2adapt.envs.task_env import Task, TaskEnv


def _mujoco_warning(message: str) -> None:
    # Gymnasium's own half_cheetah.xml uses the deprecated `settotalmass`; MuJoCo prints
    # that at every compile (and writes MUJOCO_LOG.TXT). Drop that one, keep the others.
    if "settotalmass" not in message:
        warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)


mujoco.set_mju_user_warning(_mujoco_warning)

Array = TypeVar("Array", np.ndarray, torch.Tensor)

#: Speeds (m/s, rad/s) beyond which a simulated state is a numerical blow-up, not motion. The
#: fastest legitimate motion seen on these robots is ~40 m/s (MPC with the simulator as its model
#: on the quarter-mass half-cheetah); a diverging simulation passes 1e5 m/s before MuJoCo's own
#: check (an acceleration over 1e10) resets it, and its rewards then dwarf every real episode.
MAX_SPEED = 1e3


def diverged(qvel: np.ndarray) -> np.ndarray:
    """Whether each state's velocities ``qvel (..., nv)`` are non-finite or beyond :data:`MAX_SPEED`."""
    return ~(np.abs(qvel) <= MAX_SPEED).all(-1)  # NaN compares False: non-finite counts too


#: Model fields a task may modify; their nominal values are cached at construction.
EDITABLE_FIELDS = ("actuator_gear", "body_mass", "body_inertia", "dof_damping", "geom_size", "geom_pos", "geom_rgba")
#: Colour of disabled / crippled parts in rendered frames.
MARK_RGBA = np.array([0.9, 0.1, 0.1, 1.0])


@dataclass(frozen=True)
class LocomotionReward:
    """``w_fwd * v_x' - w_ctrl * |a|^2 + healthy_reward * healthy(s')``, from observations.

    Attributes:
        vel_index: index of the root x-velocity in the observation.
        forward_weight: ``w_fwd``.
        ctrl_weight: ``w_ctrl``.
        healthy_reward: bonus per healthy step (0: no health terms, never terminates).
        z_index / z_range: torso height and its open healthy interval.
        angle_index / angle_range: torso pitch and its open healthy interval (Hopper).
        bounded_from / state_bound: ``|obs[bounded_from:]| < state_bound`` (Hopper).
    """

    vel_index: int
    forward_weight: float = 1.0
    ctrl_weight: float = 0.1
    healthy_reward: float = 0.0
    z_index: int | None = None
    z_range: tuple[float, float] = (-np.inf, np.inf)
    angle_index: int | None = None
    angle_range: tuple[float, float] = (-np.inf, np.inf)
    bounded_from: int | None = None
    state_bound: float = np.inf

    def healthy(self, next_obs: Array) -> Array:
        """Healthy flags of ``next_obs`` (``(...,)`` booleans)."""
        finite = torch.isfinite(next_obs) if isinstance(next_obs, torch.Tensor) else np.isfinite(next_obs)
        ok = finite.all(-1)
        if self.z_index is not None:
            z = next_obs[..., self.z_index]
            ok = ok & (z > self.z_range[0]) & (z < self.z_range[1])
        if self.angle_index is not None:
            angle = next_obs[..., self.angle_index]
            ok = ok & (angle > self.angle_range[0]) & (angle < self.angle_range[1])
        if self.bounded_from is not None:
            ok = ok & (abs(next_obs[..., self.bounded_from :]) < self.state_bound).all(-1)
        return ok

    def reward(self, act: Array, next_obs: Array) -> Array:
        r = self.forward_weight * next_obs[..., self.vel_index] - self.ctrl_weight * (act**2).sum(-1)
        if self.healthy_reward:
            r = r + self.healthy_reward * self.healthy(next_obs)
        return r

    def terminated(self, next_obs: Array) -> Array:
        if not self.healthy_reward:
            # *_like: on the device (and of the array type) of the input, never a default one.
            if isinstance(next_obs, torch.Tensor):
                return torch.zeros_like(next_obs[..., 0], dtype=torch.bool)
            return np.zeros_like(next_obs[..., 0], dtype=bool)
        return ~self.healthy(next_obs)


class MujocoTaskMixin(TaskEnv):
    """Task support for a Gymnasium ``MujocoEnv`` subclass.

    Subclasses call :meth:`_init_tasks` at the end of ``__init__``, implement
    :meth:`_apply_task` (model edits relative to ``self._nominal``) and
    :meth:`_validate_task`, and set ``reward_spec``. ``step`` computes the reward and
    termination from the observation via ``reward_spec``.
    """

    reward_spec: LocomotionReward
    param_space: ParamSpace
    _nominal: dict[str, np.ndarray]

    def _init_tasks(self, task: Task | None) -> None:
        self._nominal = {name: getattr(self.model, name).copy() for name in EDITABLE_FIELDS}
        self.set_task(task if task is not None else self.nominal_task())

    def set_task(self, task: Task) -> None:
        clean = self._validate_task(task)
        self._apply_task(clean)
        self.task = clean
        self._info_task = clean

    # --- subclass hooks (defaults: scalar-parameter families with a ``param_space``) -----
    def sample_task(self, split: str, rng: np.random.Generator) -> Task:
        return self.param_space.sample(split, rng)

    def list_tasks(self, split: str) -> list[Task]:
        return self.param_space.list(split)

    def nominal_task(self) -> Task:
        """The task of the unmodified simulator."""
        return self.param_space.nominal()

    def _validate_task(self, task: Task) -> Task:
        return self.param_space.validate(task)

    def describe_task_space(self) -> dict[str, Any]:
        extra = {"parameters": self.param_space.describe()} if hasattr(self, "param_space") else {}
        return {**extra, **super().describe_task_space()}

    def _apply_task(self, task: Task) -> None:
        raise NotImplementedError

    # --- model edits (all relative to the cached nominal model) -------------------------
    def _restore(self, *fields: str) -> None:
        for name in fields:
            getattr(self.model, name)[:] = self._nominal[name]

    def _disable_actuators(self, actuators: Sequence[int]) -> None:
        """Zero the gear of ``actuators`` (their controls then exert no force)."""
        self._restore("actuator_gear")
        for i in actuators:
            self.model.actuator_gear[i, :] = 0.0

    def _mark_geoms(self, geoms: Sequence[int]) -> None:
        """Paint ``geoms`` red (restoring every other geom's colour)."""
        self._restore("geom_rgba")
        for g in geoms:
            self.model.geom_rgba[g] = MARK_RGBA

    def _scale_mass(self, scale: float) -> None:
        """Scale every body's mass and inertia (a uniformly denser or lighter robot)."""
        self.model.body_mass[:] = self._nominal["body_mass"] * scale
        self.model.body_inertia[:] = self._nominal["body_inertia"] * scale

    def _scale_damping(self, scale: float) -> None:
        self.model.dof_damping[:] = self._nominal["dof_damping"] * scale

    def actuator_geoms(self, actuator: int) -> list[int]:
        """Geoms of the body the actuator's joint moves (what to mark as disabled)."""
        joint = int(self.model.actuator_trnid[actuator, 0])
        body = int(self.model.jnt_bodyid[joint])
        start, count = int(self.model.body_geomadr[body]), int(self.model.body_geomnum[body])
        return list(range(start, start + count))

    def _name2id(self, kind: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(self.model, kind, name)
        if i < 0:
            raise ValueError(f"model has no {kind.name} named {name!r}")
        return int(i)

    # --- stepping -----------------------------------------------------------------------
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Simulate ``frame_skip`` substeps; reward and termination from the new observation.

        A step after which the simulation has diverged (velocities beyond :data:`MAX_SPEED`, or
        MuJoCo reset the state after an unstable acceleration) ends the episode with reward 0 and
        ``info["diverged"] = True``: its observation is not a state of the robot, and
        :func:`~learn2adapt.run.rollout.run_episodes` does not keep the transition.
        """
        x_before = float(self.data.qpos[0])
        unstable = self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC]  # MuJoCo counts its resets here
        resets = unstable.number
        self.do_simulation(action, self.frame_skip)
        obs = self._get_obs()
        if unstable.number > resets or diverged(self.data.qvel):
            return obs, 0.0, True, False, {"task": dict(self._info_task), "diverged": True}
        spec = self.reward_spec
        action = np.asarray(action)
        forward = spec.forward_weight * float(obs[spec.vel_index])
        ctrl = spec.ctrl_weight * float(np.square(action).sum())
        healthy = bool(spec.healthy(obs)) if spec.healthy_reward else True
        reward = forward - ctrl + (spec.healthy_reward if (spec.healthy_reward and healthy) else 0.0)
        info = {
            "task": dict(self._info_task),
            "x_position": float(self.data.qpos[0]),
            "x_displacement_velocity": (float(self.data.qpos[0]) - x_before) / self.dt,
            "reward_forward": forward,
            "reward_ctrl": -ctrl,
        }
        if self.render_mode == "human":
            self.render()
        return obs, reward, not healthy, False, info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs, info = super().reset(seed=seed, options=options)
        info["task"] = dict(self._info_task)
        return obs, info

    def reward_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return self.reward_spec.reward(act, next_obs)

    def termination_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return self.reward_spec.terminated(next_obs)


def check_keys(task: Task, keys: set[str] | Sequence[str]) -> None:
    """``ValueError`` unless ``task`` has exactly ``keys``."""
    if set(task) != set(keys):
        raise ValueError(f"task {task!r} must have exactly the keys {sorted(keys)}")
