"""Render an evaluation episode of a trained run to MP4 or GIF.

MuJoCo environments render themselves (``render_mode="rgb_array"``, headless
through ``MUJOCO_GL=egl``); a caption with the step, the reward and the task in
force is drawn on each frame, so a mid-episode switch is visible. The numpy
environments (Pendulum, CartPole) have no renderer: for them each frame is a
small matplotlib drawing of the system (pendulum or cart-pole sketched from the
observation; other observations as bars) next to the reward trace.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering, before mujoco is imported

import gymnasium as gym
import numpy as np

from learn2adapt.errors import ConfigError, UserError
from learn2adapt.run.run_dir import check_writable, os_error_message

#: File types ``learn2adapt video`` writes.
FORMATS = (".mp4", ".gif")


def _caption(step: int, reward: float, total: float, task: dict[str, Any], switched: bool) -> str:
    from learn2adapt.reporting.records import task_label

    return f"step {step}  reward {reward:+.2f}  return {total:+.1f}  task {task_label(task)}" + (
        "  << SWITCH" if switched else ""
    )


class _SketchRenderer:
    """Matplotlib frames for environments that cannot render themselves."""

    def __init__(self, env_id: str, width: int = 640, height: int = 360) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.kind = (
            "pendulum" if "pendulum" in env_id.lower() else "cartpole" if "cartpole" in env_id.lower() else "bars"
        )
        self.fig, (self.ax_sys, self.ax_rew) = plt.subplots(
            1, 2, figsize=(width / 100, height / 100), dpi=100, gridspec_kw={"width_ratios": [1, 1.4]}
        )
        self.fig.subplots_adjust(left=0.02, right=0.97, bottom=0.14, top=0.88, wspace=0.25)
        self.rewards: list[float] = []
        self.switches: list[int] = []

    def __call__(self, obs: np.ndarray, reward: float | None, caption: str, switched: bool) -> np.ndarray:
        if reward is not None:
            self.rewards.append(reward)
            if switched:
                self.switches.append(len(self.rewards) - 1)
        ax = self.ax_sys
        ax.clear()
        if self.kind == "pendulum" and obs.shape[0] >= 3:
            theta = math.atan2(float(obs[1]), float(obs[0]))  # obs = (cos, sin, angular velocity), 0 = upright
            x, y = math.sin(theta), math.cos(theta)
            ax.plot([0, x], [0, y], lw=4, color="tab:blue")
            ax.plot([x], [y], "o", ms=12, color="tab:blue")
            ax.set_xlim(-1.3, 1.3)
            ax.set_ylim(-1.3, 1.3)
        elif self.kind == "cartpole" and obs.shape[0] >= 4:
            x, theta = float(obs[0]), float(obs[2])
            ax.add_patch(self.plt.Rectangle((x - 0.25, -0.1), 0.5, 0.2, color="0.3"))
            ax.plot([x, x + math.sin(theta)], [0, math.cos(theta)], lw=4, color="tab:orange")
            ax.axhline(-0.1, color="k", lw=0.5)
            ax.set_xlim(-3, 3)
            ax.set_ylim(-1.5, 1.5)
        else:
            ax.bar(np.arange(obs.shape[0]), obs, color="tab:blue")
            ax.set_title("observation", fontsize=8)
        ax.set_aspect("equal" if self.kind != "bars" else "auto")
        ax.set_xticks([])
        ax.set_yticks([])
        ax = self.ax_rew
        ax.clear()
        ax.plot(self.rewards, color="tab:green", lw=1)
        for s in self.switches:
            ax.axvline(s, color="tab:red", lw=1, ls="--")
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("reward", fontsize=8)
        ax.tick_params(labelsize=7)
        self.fig.suptitle(caption, fontsize=8)
        self.fig.canvas.draw()
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        self.plt.close(self.fig)


def _draw_caption(frame: np.ndarray, caption: str) -> np.ndarray:
    """The frame with ``caption`` in a dark band at the top (Pillow, a matplotlib dependency)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, 16], fill=(0, 0, 0))
    draw.text((4, 2), caption, fill=(255, 255, 255))
    return np.asarray(img)


class _FrameRecorder(gym.Wrapper):
    """Captures one frame after ``reset`` and after every ``step``."""

    def __init__(self, env: gym.Env, native: bool, sketch: _SketchRenderer | None) -> None:
        super().__init__(env)
        self.native, self.sketch = native, sketch
        self.frames: list[np.ndarray] = []
        self.total, self.step_count = 0.0, 0
        self.last_task: dict[str, Any] | None = None

    def _frame(self, obs: np.ndarray, reward: float | None, task: dict[str, Any]) -> None:
        switched = self.last_task is not None and task != self.last_task
        self.last_task = task
        caption = _caption(self.step_count, reward or 0.0, self.total, task, switched)
        if self.native:
            self.frames.append(_draw_caption(np.asarray(self.env.render()), caption))
        else:
            self.frames.append(self.sketch(np.asarray(obs, np.float64), reward, caption, switched))

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.total, self.step_count = 0.0, 0
        self.last_task: dict[str, Any] | None = None
        self._frame(obs, None, dict(getattr(self.env.unwrapped, "task", {}) or {}))
        return obs, info

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        self.total += float(reward)
        self.step_count += 1
        self._frame(obs, float(reward), dict(info.get("task", {})))
        return obs, reward, term, trunc, info


def _make_render_env(env_id: str, length: int, options: dict[str, Any]) -> tuple[gym.Env, bool]:
    """The environment (``make_env`` options ``options``) with its own ``rgb_array`` renderer if it has one;
    (env, native)."""
    from learn2adapt.envs import make_env

    try:
        env = make_env(env_id, max_episode_steps=length, render_mode="rgb_array", **options)
    except TypeError:  # an environment without a render_mode argument
        return make_env(env_id, max_episode_steps=length, **options), False
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as e:  # noqa: BLE001 - any renderer failure means "draw it ourselves"
        if "mujoco" in type(env.unwrapped).__module__.lower() or hasattr(env.unwrapped, "mujoco_renderer"):
            raise RuntimeError(
                f"MuJoCo could not render ({type(e).__name__}: {e}); headless rendering needs "
                "MUJOCO_GL=egl (or osmesa) and the matching system library"
            ) from None
        frame = None
    if isinstance(frame, np.ndarray) and frame.ndim == 3:
        return env, True
    env.close()
    return make_env(env_id, max_episode_steps=length, **options), False


def render_episode(
    run_dir: Path,
    out: Path | None = None,
    task: dict[str, Any] | None = None,
    schedule: str | None = None,
    seed: int = 0,
    steps: int | None = None,
    fps: int = 30,
    progress: bool = True,
) -> Path:
    """Run one evaluation episode of the run in ``run_dir`` and save it as a video.

    Args:
        run_dir: a run directory (its checkpoint is loaded).
        out: ``.mp4`` or ``.gif`` file (default: ``run_dir/episode.mp4``).
        task: task at the start (default: the first held-out test task).
        schedule: task schedule spec (default: the run's ``eval.schedule``).
        seed: episode reset seed and planner seed.
        steps: episode length (default: the run's evaluation episode length).
        fps: frames per second.
        progress: show a progress bar.

    Returns:
        The written file.

    Raises:
        ConfigError: an unsupported output format or a bad task.
    """
    import imageio.v2 as imageio

    from learn2adapt.evaluation.protocol import schedule_envs
    from learn2adapt.experiments.runs import load_any as load_run
    from learn2adapt.run.rollout import run_episodes

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "episode.mp4"
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"cannot write {out.name}: the video format must be one of {', '.join(FORMATS)}")
    check_writable(out.parent)  # before rendering the whole episode, not after it
    st = load_run(run_dir)
    cfg = st.cfg
    length = steps or cfg.eval.episode_length or cfg.episode_length
    env, native = _make_render_env(cfg.env, length, cfg.env_options())
    sketch = None if native else _SketchRenderer(cfg.env)
    if task is None:
        task = env.unwrapped.list_tasks("test")[0]
    (env,) = schedule_envs([env], schedule if schedule is not None else cfg.eval.schedule)
    recorder = _FrameRecorder(env, native, sketch)
    agent = st.controller([recorder], seed)
    try:
        try:
            (episode,) = run_episodes([recorder], agent, 1, lambda k: (task, seed), desc="render", progress=progress)
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"cannot run task {json.dumps(task)} on {cfg.env}: {e}") from None
        frames = recorder.frames
        options: dict[str, Any]
        if out.suffix.lower() == ".gif":
            options = {"format": "GIF", "duration": 1000 / fps, "loop": 0}
        else:
            options = {"format": "FFMPEG", "fps": fps, "codec": "libx264", "quality": 7, "macro_block_size": 8}
        # Written whole, then renamed: a full disk leaves no partial .gif or empty .mp4 behind.
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            imageio.mimsave(tmp, list(frames), **options)
            os.replace(tmp, out)
        except OSError as e:
            raise UserError(os_error_message(e, f"write {out}") + "; nothing was written") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        recorder.close()
        if sketch is not None:
            sketch.close()
    if progress:
        print(f"{len(frames)} frames, return {episode.total_reward:.1f}, task {json.dumps(task)}")
    return out
