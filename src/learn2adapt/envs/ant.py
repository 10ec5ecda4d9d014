"""Ant task families: a crippled leg (paper) and a mass scale (CaDM).

Both subclass Gymnasium's ``Ant-v5`` without the contact forces in the observation
(``include_cfrc_ext_in_observation=False``) and without the contact cost (not
computable from that observation): observation ``qpos[2:] ++ qvel`` (27 numbers;
torso height ``obs[0]``, x-velocity ``obs[13]``). Reward ``qvel'[0] - 0.5 |a|^2 + 1``
while healthy (``0.2 < z' < 1``, state finite); unhealthy ends the episode.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from learn2adapt.envs.mujoco_base import LocomotionReward, MujocoTaskMixin, check_keys
from learn2adapt.envs.param_space import ParamSpace, ScaleParam
from learn2adapt.envs.task_env import Task, check_split

ANT_REWARD = LocomotionReward(
    vel_index=13, forward_weight=1.0, ctrl_weight=0.5, healthy_reward=1.0, z_index=0, z_range=(0.2, 1.0)
)
#: Leg k is driven by joints hip_{k+1} and ankle_{k+1}.
ANT_LEGS = 4


class AntTaskEnv(MujocoTaskMixin, AntEnv):
    """Ant-v5 with a 27-number observation, an observation-computable reward and tasks.

    Args:
        task: initial task (default: the nominal one).
        **kwargs: passed to Gymnasium's ``AntEnv``.
    """

    reward_spec = ANT_REWARD

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("include_cfrc_ext_in_observation", False)
        kwargs.setdefault("contact_cost_weight", 0.0)
        AntEnv.__init__(self, **kwargs)
        self._init_tasks(task)


class AntCrippledLegEnv(AntTaskEnv):
    """One leg crippled: both its actuators exert no torque and its lower segments shrink.

    Task ``{"leg": k}`` with ``k`` in 0..3 (the leg of joints ``hip_{k+1}``,
    ``ankle_{k+1}``), or ``{"leg": None}`` for the intact ant (nominal; used by the
    ``onset`` / ``paper-ant-crippled`` schedules). The crippled leg's two capsules below
    the hip are halved in radius and length (as in the paper's code) and drawn red.

    Paper split: train legs 0-2; test leg 3.
    """

    TRAIN = (0, 1, 2)
    TEST = (3,)

    def _init_tasks(self, task: Task | None) -> None:
        actuator_of_joint = {int(self.model.actuator_trnid[a, 0]): a for a in range(self.model.nu)}
        self._leg_actuators: list[list[int]] = []
        self._leg_geoms: list[list[int]] = []  # shrunk: the geoms on the hip's and the ankle's bodies
        self._leg_marked: list[list[int]] = []  # drawn red: the whole leg
        for k in range(ANT_LEGS):
            joints = [self._name2id(mujoco.mjtObj.mjOBJ_JOINT, f"{j}_{k + 1}") for j in ("hip", "ankle")]
            self._leg_actuators.append([actuator_of_joint[j] for j in joints])
            bodies = [int(self.model.jnt_bodyid[j]) for j in joints]
            geoms = [
                g
                for b in bodies
                for g in range(self.model.body_geomadr[b], self.model.body_geomadr[b] + self.model.body_geomnum[b])
            ]
            self._leg_geoms.append(geoms)
            top = int(self.model.body_parentid[bodies[0]])
            self._leg_marked.append(
                geoms
                + list(range(self.model.body_geomadr[top], self.model.body_geomadr[top] + self.model.body_geomnum[top]))
            )
        super()._init_tasks(task)

    def list_tasks(self, split: str) -> list[Task]:
        check_split(split)
        return [{"leg": k} for k in (self.TRAIN if split == "train" else self.TEST)]

    def sample_task(self, split: str, rng: np.random.Generator) -> Task:
        tasks = self.list_tasks(split)
        return tasks[int(rng.integers(len(tasks)))]

    def nominal_task(self) -> Task:
        return {"leg": None}

    def _validate_task(self, task: Task) -> Task:
        check_keys(task, {"leg"})
        leg = task["leg"]
        if leg is not None and (int(leg) != leg or not 0 <= int(leg) < ANT_LEGS):
            raise ValueError(f"leg {leg!r} must be None or an integer in 0..{ANT_LEGS - 1}")
        return {"leg": None if leg is None else int(leg)}

    def _apply_task(self, task: Task) -> None:
        self._restore("geom_size", "geom_pos")
        leg = task["leg"]
        if leg is None:
            self._disable_actuators([])
            self._mark_geoms([])
            return
        self._disable_actuators(self._leg_actuators[leg])
        self._mark_geoms(self._leg_marked[leg])
        for g in self._leg_geoms[leg]:
            # Capsules start at their body's origin: halving centre and size halves them in place.
            self.model.geom_size[g, :2] = self._nominal["geom_size"][g, :2] / 2
            self.model.geom_pos[g] = self._nominal["geom_pos"][g] / 2


ANT_MASS = ParamSpace([ScaleParam("mass", train=(0.85, 1.0), test=((0.2, 0.4), (0.4, 0.6)))])


class AntMassEnv(AntTaskEnv):
    """CaDM's Ant: every body's mass and inertia scaled. Task ``{"mass": s}``;
    train ``s`` in [0.85, 1.0]; test in [0.2, 0.4] (extreme) or [0.4, 0.6] (moderate)."""

    param_space = ANT_MASS

    def _apply_task(self, task: Task) -> None:
        self._scale_mass(task["mass"])
