"""rgb_array rendering (MUJOCO_GL=egl): disabled parts are visibly marked, terrain edits are drawn."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

import learn2adapt  # noqa: F401
from learn2adapt.envs import make_env


def _frame(env_id: str, task: dict, x: float | None = None, **kwargs) -> np.ndarray:
    env = make_env(env_id, render_mode="rgb_array", **kwargs)
    env.unwrapped.set_task(task)
    env.reset(seed=0)
    if x is not None:  # put the robot at x, standing on the terrain there
        base = env.unwrapped
        qpos = base.data.qpos.copy()
        qpos[0] = x
        qpos[1] += float(base.terrain_height(x)) if hasattr(base, "terrain_height") else 0.0
        base.set_state(qpos, base.data.qvel)
    try:
        img = env.render()
    except Exception as e:  # no OpenGL on this machine
        pytest.skip(f"rendering unavailable: {e}")
    finally:
        env.close()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    return img


def _red(img: np.ndarray) -> int:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return int(((r > 90) & (r > 2.5 * g) & (r > 2.5 * b)).sum())


@pytest.mark.parametrize("env_id, nominal, damaged", [
    ("learn2adapt/HalfCheetahDisabledJoint-v0", {"disabled": []}, {"disabled": [0]}),
    ("learn2adapt/AntCrippledLeg-v0", {"leg": None}, {"leg": 3}),
])
def test_damage_is_drawn_red(env_id: str, nominal: dict, damaged: dict) -> None:
    size = {"width": 320, "height": 240}
    assert _red(_frame(env_id, nominal, **size)) == 0
    assert _red(_frame(env_id, damaged, **size)) > 50


def test_terrain_change_is_rendered() -> None:
    """A task switch after the first frame re-uploads the height field to the GPU."""
    env = make_env("learn2adapt/HalfCheetahSlopes-v0", render_mode="rgb_array", width=160, height=120)
    base = env.unwrapped
    base.set_task({"terrain": "flat"})
    env.reset(seed=0)
    qpos = base.data.qpos.copy()
    qpos[0], qpos[1] = 14.0, 2.5  # above the steep terrain's height there, and the flat one's
    base.set_state(qpos, base.data.qvel)
    try:
        flat = env.render()
    except Exception as e:  # no OpenGL on this machine
        pytest.skip(f"rendering unavailable: {e}")
    base.set_task({"terrain": "steep"})
    steep = env.render()
    base.set_task({"terrain": "flat"})
    again = env.render()
    env.close()
    np.testing.assert_array_equal(flat, again)
    assert np.abs(flat.astype(int) - steep.astype(int)).mean() > 5


@pytest.mark.parametrize("env_id", ["learn2adapt/PendulumVaried-v0", "learn2adapt/CartPoleVaried-v0"])
def test_classic_frames(env_id: str) -> None:
    img = _frame(env_id, make_env(env_id).unwrapped.list_tasks("train")[0])
    assert (img < 250).any() and (img == 255).any()  # something drawn on a white background
