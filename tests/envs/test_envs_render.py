"""rgb_array rendering (MUJOCO_GL=egl): disabled parts are visibly marked, terrain edits are drawn.

MuJoCo loads its GL backend when imported, and an EGL backend loaded in the main
test process costs memory in every later MuJoCo test; so, unless the session
already renders (``MUJOCO_GL`` set), these tests run in a child pytest with
``MUJOCO_GL=egl`` (``test_render_in_subprocess``).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import learn2adapt  # noqa: F401
from learn2adapt.envs import make_env

RENDERING = os.environ.get("MUJOCO_GL") in ("egl", "osmesa", "glfw")
pytestmark_gl = pytest.mark.skipif(not RENDERING, reason="needs MUJOCO_GL; run by test_render_in_subprocess")


def test_render_in_subprocess() -> None:
    if RENDERING:
        pytest.skip("this process renders: the tests below run here")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider", __file__],
        env={**os.environ, "MUJOCO_GL": "egl"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "5 passed, 1 skipped" in done.stdout, done.stdout[-1000:]  # all rendering checks ran


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


@pytestmark_gl
@pytest.mark.parametrize(
    "env_id, nominal, damaged",
    [
        ("learn2adapt/HalfCheetahDisabledJoint-v0", {"disabled": []}, {"disabled": [0]}),
        ("learn2adapt/AntCrippledLeg-v0", {"leg": None}, {"leg": 3}),
    ],
)
def test_damage_is_drawn_red(env_id: str, nominal: dict, damaged: dict) -> None:
    size = {"width": 320, "height": 240}
    assert _red(_frame(env_id, nominal, **size)) == 0
    assert _red(_frame(env_id, damaged, **size)) > 50


@pytestmark_gl
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


@pytestmark_gl
@pytest.mark.parametrize("env_id", ["learn2adapt/PendulumVaried-v0", "learn2adapt/CartPoleVaried-v0"])
def test_classic_frames(env_id: str) -> None:
    img = _frame(env_id, make_env(env_id).unwrapped.list_tasks("train")[0])
    assert (img < 250).any() and (img == 255).any()  # something drawn on a white background
