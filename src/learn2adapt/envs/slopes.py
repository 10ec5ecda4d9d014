"""HalfCheetah on sloped terrain (paper): a height field whose profile is the task.

The model is ``assets/half_cheetah_slopes.xml``: Gymnasium's cheetah with the floor
replaced by a height field along x (x in [-20, 300] m, 0.2 m columns, heights in
[-5, 15] m). The terrain is flat for x < 2 m (the start). Tasks:

- train ``{"terrain": "random", "seed": s}``: a series of ramps of random length
  (2-6 m), height (0.2-1.0 m) and sign, separated by flats of 1-4 m;
- test ``{"terrain": name}`` with name in ``TEST_TERRAINS``: ``hill`` (up 2 m over
  10 m, then down), ``basin`` (down then up), ``gentle`` (a series of 0.15 m
  up-ramps over 2 m), ``steep`` (a series of 0.5 m up-ramps over 1.5 m).

Observation, action and reward are those of :mod:`learn2adapt.envs.cheetah`; the
terrain is not observed (the absolute torso height ``obs[0]`` is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from learn2adapt.envs.cheetah import CheetahTaskEnv
from learn2adapt.envs.mujoco_base import check_keys
from learn2adapt.envs.task_env import Task, check_split

XML = str(Path(__file__).parent / "assets" / "half_cheetah_slopes.xml")
TEST_TERRAINS = ("hill", "basin", "gentle", "steep")
#: Where the flat start ends (m); the cheetah starts at x = 0.
FLAT_UNTIL = 2.0
#: Height range the field can represent (m), from the XML: pos z = -5, elevation 20.
Z_RANGE = (-5.0, 15.0)


def _repeat(start: float, end: float, rise: float, run: float, flat: float) -> list[tuple[float, float]]:
    """Knots of a staircase of ramps: ``rise`` over ``run`` m, then ``flat`` m, up to ``end``."""
    knots, x, z = [(start, 0.0)], start, 0.0
    while x < end:
        x, z = x + run, min(z + rise, Z_RANGE[1] - 1.0)
        knots.append((x, z))
        x += flat
        knots.append((x, z))
    return knots


def terrain_profile(task: Task, xs: np.ndarray) -> np.ndarray:
    """Terrain height (m) at positions ``xs`` for a slopes task."""
    end = float(xs[-1])
    name = task["terrain"]
    s = FLAT_UNTIL
    if name == "hill":
        knots = [(s, 0.0), (s + 10, 2.0), (s + 20, 0.0)]
    elif name == "basin":
        knots = [(s, 0.0), (s + 10, -2.0), (s + 20, 0.0)]
    elif name == "gentle":
        knots = _repeat(s, end, rise=0.15, run=2.0, flat=2.0)
    elif name == "steep":
        knots = _repeat(s, end, rise=0.5, run=1.5, flat=3.0)
    elif name == "random":
        rng = np.random.default_rng(int(task["seed"]))
        knots, x, z = [(s, 0.0)], s, 0.0
        while x < end:
            rise = rng.uniform(0.2, 1.0) * rng.choice([-1.0, 1.0])
            if not Z_RANGE[0] + 1.0 < z + rise < Z_RANGE[1] - 1.0:
                rise = -rise  # stay inside the representable relief
            x, z = x + rng.uniform(2.0, 6.0), z + rise
            knots.append((x, z))
            x += rng.uniform(1.0, 4.0)
            knots.append((x, z))
    else:
        raise ValueError(f"unknown terrain {name!r}: use 'random' or one of {TEST_TERRAINS}")
    kx, kz = np.array(knots).T
    return np.interp(xs, kx, kz, left=0.0, right=float(kz[-1]))


class HalfCheetahSlopesEnv(CheetahTaskEnv):
    """HalfCheetah on a height-field terrain chosen by the task (see module docstring).

    Args:
        task: initial task (default: the flat terrain, ``{"terrain": "flat"}``).
        **kwargs: passed to Gymnasium's ``HalfCheetahEnv``.
    """

    TRAIN_SEEDS = (0, 1, 2, 3, 4)

    def __init__(self, task: Task | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("xml_file", XML)
        super().__init__(task, **kwargs)

    def _init_tasks(self, task: Task | None) -> None:
        self._hfield = self._name2id(mujoco.mjtObj.mjOBJ_HFIELD, "terrain")
        nrow, ncol = int(self.model.hfield_nrow[self._hfield]), int(self.model.hfield_ncol[self._hfield])
        half_x, _, elevation, _ = self.model.hfield_size[self._hfield]
        geom = self._name2id(mujoco.mjtObj.mjOBJ_GEOM, "floor")
        cx, _, cz = self.model.geom_pos[geom]
        self._columns_x = np.linspace(cx - half_x, cx + half_x, ncol)
        self._z0, self._elevation, self._shape = float(cz), float(elevation), (nrow, ncol)
        super()._init_tasks(task)

    def list_tasks(self, split: str) -> list[Task]:
        check_split(split)
        if split == "train":
            return [{"terrain": "random", "seed": s} for s in self.TRAIN_SEEDS]
        return [{"terrain": name} for name in TEST_TERRAINS]

    def sample_task(self, split: str, rng: np.random.Generator) -> Task:
        check_split(split)
        if split == "train":
            return {"terrain": "random", "seed": int(rng.integers(2**31 - 1))}
        return {"terrain": TEST_TERRAINS[int(rng.integers(len(TEST_TERRAINS)))]}

    def nominal_task(self) -> Task:
        return {"terrain": "flat"}

    def _validate_task(self, task: Task) -> Task:
        name = task.get("terrain")
        if name == "random":
            check_keys(task, {"terrain", "seed"})
            return {"terrain": "random", "seed": int(task["seed"])}
        check_keys(task, {"terrain"})
        if name != "flat" and name not in TEST_TERRAINS:
            raise ValueError(f"unknown terrain {name!r}: use 'random' (with a seed), 'flat' or one of {TEST_TERRAINS}")
        return {"terrain": name}

    def terrain_height(self, x: np.ndarray | float) -> np.ndarray:
        """Height of the current terrain at ``x`` (m)."""
        return np.interp(x, self._columns_x, self._heights)

    def _apply_task(self, task: Task) -> None:
        if task["terrain"] == "flat":
            heights = np.zeros_like(self._columns_x)
        else:
            heights = terrain_profile(task, self._columns_x)
        self._heights = np.clip(heights, *Z_RANGE)
        data = (self._heights - self._z0) / self._elevation
        adr = int(self.model.hfield_adr[self._hfield])
        self.model.hfield_data[adr : adr + data.size * self._shape[0]] = np.tile(data, self._shape[0])
        self._upload_hfield()

    def _upload_hfield(self) -> None:
        """Send the new elevation to the renderers' GPU contexts (they cache it)."""
        renderer = getattr(self, "mujoco_renderer", None)
        for viewer in getattr(renderer, "_viewers", {}).values():
            con = getattr(viewer, "con", None)
            if con is not None:
                viewer.make_context_current() if hasattr(viewer, "make_context_current") else None
                mujoco.mjr_uploadHField(self.model, con, self._hfield)
