"""Hopper with a scaled mass (T-MCL's HopperMass).

Subclasses Gymnasium's ``Hopper-v5`` (observation ``qpos[1:] ++ qvel``, 11 numbers:
height ``obs[0]``, pitch ``obs[1]``, x-velocity ``obs[5]``). Reward
``qvel'[0] - 0.001 |a|^2 + 1`` while healthy (v5's conditions: ``z' > 0.7``,
``|pitch'| < 0.2``, ``|obs'[1:]| < 100``); v5 uses the displacement over the step
instead of ``qvel'[0]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

from learn2adapt.envs.mujoco_base import LocomotionReward, MujocoTaskMixin
from learn2adapt.envs.param_space import ParamSpace, ScaleParam
from learn2adapt.envs.task_env import Task

HOPPER_REWARD = LocomotionReward(
    vel_index=5,
    forward_weight=1.0,
    ctrl_weight=1e-3,
    healthy_reward=1.0,
    z_index=0,
    z_range=(0.7, np.inf),
    angle_index=1,
    angle_range=(-0.2, 0.2),
    bounded_from=1,
    state_bound=100.0,
)
HOPPER_MASS = ParamSpace([ScaleParam("mass", train=(0.5, 1.5), test=((0.25, 0.375), (1.75, 2.0)))])


class HopperMassEnv(MujocoTaskMixin, HopperEnv):
    """Task ``{"mass": s}``: every body's mass and inertia scaled. Train ``s`` in
    [0.5, 1.5]; test in [0.25, 0.375] or [1.75, 2.0].

    Args:
        task: initial task (default: nominal).
        **kwargs: passed to Gymnasium's ``HopperEnv``.
    """

    reward_spec = HOPPER_REWARD
    param_space = HOPPER_MASS

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        HopperEnv.__init__(self, **kwargs)
        self._init_tasks(task)

    def _apply_task(self, task: Task) -> None:
        self._scale_mass(task["mass"])
