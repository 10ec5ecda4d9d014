"""HalfCheetah task families: disabled joints (paper, CaDM) and mass/damping scales (CaDM).

All subclass Gymnasium's ``HalfCheetah-v5`` (frame skip 5, dt 0.05 s; observation
``qpos[1:] ++ qvel``, 17 numbers). The reward is ``qvel'[0] - 0.1 |a|^2`` with the
root x-velocity *after* the step (``obs[8]``) instead of v5's displacement over the
step, so it is computable from observations (see ``docs/envs/halfcheetah.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from learn2adapt.envs.mujoco_base import LocomotionReward, MujocoTaskMixin, check_keys
from learn2adapt.envs.param_space import ParamSpace, ScaleParam
from learn2adapt.envs.task_env import Task, check_split

#: Actuated joints, in actuator order (joint index = actuator index).
CHEETAH_JOINTS = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
#: Root x-velocity ``qvel[0]`` in the observation ``qpos[1:] ++ qvel``.
CHEETAH_REWARD = LocomotionReward(vel_index=8, forward_weight=1.0, ctrl_weight=0.1)
#: Rendering camera, seen from the side; ``render`` points it at the torso every frame.
SIDE_CAMERA = {"distance": 5.0, "elevation": -15.0, "azimuth": 90.0}


class CheetahTaskEnv(MujocoTaskMixin, HalfCheetahEnv):
    """HalfCheetah-v5 with an observation-computable reward and task support.

    Args:
        task: initial task (default: the nominal one).
        **kwargs: passed to Gymnasium's ``HalfCheetahEnv`` (``render_mode``,
            ``width``, ``height``, ``frame_skip``, ``xml_file``, ...).
    """

    reward_spec = CHEETAH_REWARD

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("default_camera_config", SIDE_CAMERA)
        HalfCheetahEnv.__init__(self, **kwargs)
        self._init_tasks(task)

    def render(self) -> Any:
        """Gymnasium's frame, with the free camera following the torso.

        v5 looks at a fixed point (the model's centre), which on the long terrain and pier
        models is far from the robot.
        """
        if self.render_mode in ("rgb_array", "depth_array", "rgbd_tuple") and getattr(
            self.mujoco_renderer, "camera_id", None
        ) in (None, -1):
            viewer = self.mujoco_renderer._get_viewer(self.render_mode)
            viewer.cam.lookat[:] = self.data.subtree_com[1]
        return super().render()


class HalfCheetahDisabledJointEnv(CheetahTaskEnv):
    """One (or more) of the six actuated joints is disabled: its actuator exerts no torque.

    Task ``{"disabled": [j, ...]}`` with joint indices in actuator order
    (0 bthigh, 1 bshin, 2 bfoot, 3 fthigh, 4 fshin, 5 ffoot). The disabled actuator's
    gear is set to zero, so its action has no effect on the next state (it still
    counts in the control cost, which the planner computes from the action). Its
    body is drawn red.

    Paper split (Nagabandi et al. 2019): train one of joints 1-5, test joint 0.
    """

    TRAIN: tuple[tuple[int, ...], ...] = ((1,), (2,), (3,), (4,), (5,))
    TEST: tuple[tuple[int, ...], ...] = ((0,),)

    def list_tasks(self, split: str) -> list[Task]:
        check_split(split)
        return [{"disabled": list(j)} for j in (self.TRAIN if split == "train" else self.TEST)]

    def sample_task(self, split: str, rng: np.random.Generator) -> Task:
        tasks = self.list_tasks(split)
        return tasks[int(rng.integers(len(tasks)))]

    def nominal_task(self) -> Task:
        return {"disabled": []}

    def _validate_task(self, task: Task) -> Task:
        check_keys(task, {"disabled"})
        joints = sorted({int(j) for j in task["disabled"]})
        if any(not 0 <= j < len(CHEETAH_JOINTS) for j in joints):
            raise ValueError(f"disabled joints {task['disabled']} must be in 0..{len(CHEETAH_JOINTS) - 1}")
        return {"disabled": joints}

    def _apply_task(self, task: Task) -> None:
        joints: Sequence[int] = task["disabled"]
        self._disable_actuators(joints)
        self._mark_geoms([g for j in joints for g in self.actuator_geoms(j)])


class CrippledHalfCheetahEnv(HalfCheetahDisabledJointEnv):
    """CaDM's CrippledHalfCheetah: train one of joints 0-3 disabled; test joint 4 or 5
    (moderate) or both 4 and 5 (extreme)."""

    TRAIN = ((0,), (1,), (2,), (3,))
    TEST = ((4,), (5,), (4, 5))


CHEETAH_MASS_DAMPING = ParamSpace(
    [
        ScaleParam(
            "mass",
            train=(0.75, 0.85, 1.0, 1.15, 1.25),
            discrete=True,
            test=((0.2, 0.3), (0.4, 0.5), (1.5, 1.6), (1.7, 1.8)),
        ),
        ScaleParam(
            "damping",
            train=(0.75, 0.85, 1.0, 1.15, 1.25),
            discrete=True,
            test=((0.2, 0.3), (0.4, 0.5), (1.5, 1.6), (1.7, 1.8)),
        ),
    ],
    test_listing="diagonal",
)


class HalfCheetahMassDampingEnv(CheetahTaskEnv):
    """CaDM's HalfCheetah: every body's mass (and inertia) and every joint's damping scaled.

    Task ``{"mass": s_m, "damping": s_d}``. Train: each from {0.75, 0.85, 1.0, 1.15,
    1.25}; test: each uniform in one of [0.2, 0.3], [0.4, 0.5] (extreme/moderate
    light), [1.5, 1.6], [1.7, 1.8]. ``list_tasks("test")`` gives the four interval
    middles with both scales equal.
    """

    param_space = CHEETAH_MASS_DAMPING

    def _apply_task(self, task: Task) -> None:
        self._scale_mass(task["mass"])
        self._scale_damping(task["damping"])
