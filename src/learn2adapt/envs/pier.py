"""HalfCheetah on a pier of floating blocks (paper): per-block damping is the task.

The model (``assets/half_cheetah_pier.xml``, written by :func:`pier_xml`) is
Gymnasium's cheetah on a fixed start platform (x < 2 m), then ``N_BLOCKS`` blocks
1 m long, each on a vertical slide joint with a spring that floats it at deck level
(z = 0), then a fixed end platform. A block sinks under the cheetah's weight and
bounces back at a rate set by its damping. Blocks collide only with the cheetah.

Tasks: train ``{"pier": "random", "seed": s}``: each block's damping uniform in
[0, 10] (N s/m), drawn from ``s`` (per episode); test ``{"pier": "alternating"}``
(0, 10, 0, 10, ...) and ``{"pier": "ramp"}`` (0 rising to 10 along the pier): fixed
configurations never drawn in training. The block states are not observed: the
observation is the cheetah's own (``qpos[1:9] ++ qvel[:9]``, 17 numbers) and the
reward that of :mod:`learn2adapt.envs.cheetah`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from learn2adapt.envs.cheetah import CheetahTaskEnv
from learn2adapt.envs.mujoco_base import check_keys
from learn2adapt.envs.task_env import Task, check_split

XML = str(Path(__file__).parent / "assets" / "half_cheetah_pier.xml")
N_BLOCKS = 40
PIER_START = 2.0
BLOCK_LENGTH = 1.0
BLOCK_MASS = 0.5
BLOCK_STIFFNESS = 600.0
DAMPING_RANGE = (0.0, 10.0)
TEST_PIERS = ("alternating", "ramp")
#: The cheetah's generalised coordinates come first in the model (rootx .. ffoot).
CHEETAH_DOFS = 9


def pier_xml(cheetah_xml: str | None = None, n_blocks: int = N_BLOCKS) -> str:
    """The pier model: Gymnasium's ``half_cheetah.xml`` text with its floor replaced.

    Args:
        cheetah_xml: contents of Gymnasium's ``half_cheetah.xml`` (default: read it).
        n_blocks: number of floating blocks.
    """
    if cheetah_xml is None:
        import gymnasium.envs.mujoco as gym_mujoco

        cheetah_xml = (Path(gym_mujoco.__file__).parent / "assets" / "half_cheetah.xml").read_text()
    body = cheetah_xml[cheetah_xml.index('<mujoco model="cheetah">') :]
    body = body.replace('<mujoco model="cheetah">', '<mujoco model="cheetah_pier">')
    floor = (
        '    <geom conaffinity="1" condim="3" material="MatPlane" name="floor" pos="0 0 0" '
        'rgba="0.8 0.9 0.8 1" size="40 40 40" type="plane"/>'
    )
    if floor not in body or 'settotalmass="14"' not in body:
        raise ValueError("unexpected half_cheetah.xml: floor geom or settotalmass not found")
    # settotalmass would rescale the blocks too: give the cheetah's geoms the density that
    # yields its 14 kg instead (settotalmass scales masses and inertias alike, as density does).
    natural = mujoco.MjModel.from_xml_string(body.replace(' settotalmass="14"', ""))
    density = 1000.0 * 14.0 / float(natural.body_mass.sum())
    body = body.replace(' settotalmass="14"', "")
    body = body.replace(
        '<geom conaffinity="0" condim="3" contype="1"',
        f'<geom density="{density:.6f}" conaffinity="0" condim="3" contype="1"',
        1,
    )
    # Rendering scale of the robot, not of the 300 m model (near plane, shadows).
    body = body.replace(
        '<size nstack="300000" nuser_geom="1"/>',
        '<size nstack="300000" nuser_geom="1"/>\n  <statistic center="0 0 0.5" extent="4"/>',
        1,
    )
    end = PIER_START + n_blocks * BLOCK_LENGTH
    spring_ref = BLOCK_MASS * 9.81 / BLOCK_STIFFNESS  # floats each block at z = 0 when unloaded
    statics = [
        "    <!-- Water bed, start and end platforms (static); the floating blocks follow the cheetah. -->",
        '    <geom conaffinity="1" contype="0" condim="3" material="MatPlane" name="floor" pos="0 0 -1.5" '
        'rgba="0.3 0.5 0.8 1" size="400 40 40" type="plane"/>',
        f'    <geom conaffinity="1" contype="0" name="start" pos="{(PIER_START - 30) / 2:g} 0 -0.25" '
        f'size="{(PIER_START + 30) / 2:g} 1 0.25" type="box" rgba="0.6 0.6 0.6 1"/>',
        f'    <geom conaffinity="1" contype="0" name="end" pos="{end + 100:g} 0 -0.25" '
        'size="100 1 0.25" type="box" rgba="0.6 0.6 0.6 1"/>',
    ]
    blocks = []
    for i in range(n_blocks):
        x = PIER_START + (i + 0.5) * BLOCK_LENGTH
        shade = "0.55 0.4 0.25 1" if i % 2 == 0 else "0.65 0.5 0.3 1"
        blocks += [
            f'    <body name="block{i}" pos="{x:g} 0 0">',
            f'      <joint name="block{i}" type="slide" axis="0 0 1" limited="true" range="-0.4 0.1" '
            f'stiffness="{BLOCK_STIFFNESS:g}" springref="{spring_ref:.6g}" damping="0" armature="0"/>',
            f'      <geom name="block{i}" type="box" pos="0 0 -0.1" size="{BLOCK_LENGTH * 0.48:g} 1 0.1" '
            f'mass="{BLOCK_MASS:g}" conaffinity="1" contype="0" rgba="{shade}"/>',
            "    </body>",
        ]
    body = body.replace(floor, "\n".join(statics)).replace("  </worldbody>", "\n".join(blocks) + "\n  </worldbody>")
    header = (
        "<!-- HalfCheetah on a pier of floating blocks (learn2adapt/HalfCheetahPier-v0).\n"
        "    Generated by learn2adapt.envs.pier.pier_xml from Gymnasium's half_cheetah.xml (v5):\n"
        "    same robot (settotalmass replaced by the equivalent density). Block damping is set\n"
        "    at run time. -->\n"
    )
    return header + body


class HalfCheetahPierEnv(CheetahTaskEnv):
    """HalfCheetah running over floating blocks of task-dependent damping (see module docstring).

    Args:
        task: initial task (default: every block undamped, ``{"pier": "undamped"}``).
        **kwargs: passed to Gymnasium's ``HalfCheetahEnv``.
    """

    TRAIN_SEEDS = (0, 1, 2, 3, 4)

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("xml_file", XML)
        super().__init__(task, **kwargs)
        self.observation_space = gym.spaces.Box(
            low=-np.inf, high=np.inf, shape=(2 * CHEETAH_DOFS - 1,), dtype=np.float64
        )

    def _init_tasks(self, task: Task | None) -> None:
        joints = [self._name2id(mujoco.mjtObj.mjOBJ_JOINT, f"block{i}") for i in range(N_BLOCKS)]
        self._block_dofs = np.array([self.model.jnt_dofadr[j] for j in joints])
        if self._block_dofs.min() < CHEETAH_DOFS:
            raise ValueError("pier model: the cheetah's joints must come first")
        super()._init_tasks(task)

    def list_tasks(self, split: str) -> list[Task]:
        check_split(split)
        if split == "train":
            return [{"pier": "random", "seed": s} for s in self.TRAIN_SEEDS]
        return [{"pier": name} for name in TEST_PIERS]

    def sample_task(self, split: str, rng: np.random.Generator) -> Task:
        check_split(split)
        if split == "train":
            return {"pier": "random", "seed": int(rng.integers(2**31 - 1))}
        return {"pier": TEST_PIERS[int(rng.integers(len(TEST_PIERS)))]}

    def nominal_task(self) -> Task:
        return {"pier": "undamped"}

    def _validate_task(self, task: Task) -> Task:
        name = task.get("pier")
        if name == "random":
            check_keys(task, {"pier", "seed"})
            return {"pier": "random", "seed": int(task["seed"])}
        check_keys(task, {"pier"})
        if name != "undamped" and name not in TEST_PIERS:
            raise ValueError(f"unknown pier {name!r}: use 'random' (with a seed), 'undamped' or one of {TEST_PIERS}")
        return {"pier": name}

    @staticmethod
    def block_damping(task: Task) -> np.ndarray:
        """Damping of each block (N s/m) under ``task``."""
        lo, hi = DAMPING_RANGE
        name = task["pier"]
        if name == "random":
            return np.random.default_rng(int(task["seed"])).uniform(lo, hi, size=N_BLOCKS)
        if name == "alternating":
            return np.where(np.arange(N_BLOCKS) % 2 == 0, lo, hi)
        if name == "ramp":
            return np.linspace(lo, hi, N_BLOCKS)
        return np.zeros(N_BLOCKS)

    def _apply_task(self, task: Task) -> None:
        self.model.dof_damping[self._block_dofs] = self.block_damping(task)

    def _get_obs(self) -> np.ndarray:
        return np.concatenate((self.data.qpos[1:CHEETAH_DOFS], self.data.qvel[:CHEETAH_DOFS]))

    def reset_model(self) -> np.ndarray:
        """Gymnasium's reset noise on the cheetah only; blocks start at rest at deck level."""
        scale = self._reset_noise_scale
        qpos, qvel = self.init_qpos.copy(), self.init_qvel.copy()
        qpos[:CHEETAH_DOFS] += self.np_random.uniform(-scale, scale, size=CHEETAH_DOFS)
        qvel[:CHEETAH_DOFS] += scale * self.np_random.standard_normal(CHEETAH_DOFS)
        self.set_state(qpos, qvel)
        return self._get_obs()
