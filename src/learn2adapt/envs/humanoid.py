"""SlimHumanoid (CaDM): Humanoid with a reduced observation and scaled mass and damping.

Subclasses Gymnasium's ``Humanoid-v5`` with none of the inertia, velocity, actuator
force and contact force terms in the observation: ``qpos[2:] ++ qvel`` (45 numbers;
torso height ``obs[0]``, root x-velocity ``obs[22]``). Reward
``1.25 qvel'[0] - 0.1 |a|^2 + 5`` while healthy (``1 < z' < 2``); v5 uses the
centre-of-mass displacement instead of ``qvel'[0]`` and a contact cost (dropped:
not observable).
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv

from learn2adapt.envs.mujoco_base import LocomotionReward, MujocoTaskMixin
from learn2adapt.envs.param_space import ParamSpace, ScaleParam
from learn2adapt.envs.task_env import Task

SLIM_HUMANOID_REWARD = LocomotionReward(
    vel_index=22, forward_weight=1.25, ctrl_weight=0.1, healthy_reward=5.0, z_index=0, z_range=(1.0, 2.0)
)
_TEST = ((0.4, 0.5), (0.6, 0.7), (1.5, 1.6), (1.7, 1.8))
SLIM_HUMANOID_MASS_DAMPING = ParamSpace(
    [ScaleParam("mass", train=(0.8, 1.25), test=_TEST), ScaleParam("damping", train=(0.8, 1.25), test=_TEST)],
    test_listing="diagonal",
)


class SlimHumanoidMassDampingEnv(MujocoTaskMixin, HumanoidEnv):
    """Task ``{"mass": s_m, "damping": s_d}``: every body's mass (and inertia) and every
    dof's damping scaled. Train: each in [0.8, 1.25]; test: each in one of [0.4, 0.5],
    [0.6, 0.7], [1.5, 1.6], [1.7, 1.8].

    Args:
        task: initial task (default: nominal).
        **kwargs: passed to Gymnasium's ``HumanoidEnv``.
    """

    reward_spec = SLIM_HUMANOID_REWARD
    param_space = SLIM_HUMANOID_MASS_DAMPING

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        for term in ("cinert", "cvel", "qfrc_actuator", "cfrc_ext"):
            kwargs.setdefault(f"include_{term}_in_observation", False)
        kwargs.setdefault("contact_cost_weight", 0.0)
        HumanoidEnv.__init__(self, **kwargs)
        self._init_tasks(task)

    def _apply_task(self, task: Task) -> None:
        self._scale_mass(task["mass"])
        self._scale_damping(task["damping"])
