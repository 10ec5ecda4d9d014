"""``learn2adapt record``: trajectories of any environment and policy, written as a recording.

The policy is random actions or a trained run's controller (planning and adapting as in an
evaluation); tasks are drawn from the training or test split, optionally under a schedule.
The file (:mod:`learn2adapt.data.recorded`) is what ``train --offline`` meta-trains from.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from learn2adapt.data.recorded import Recording, from_episodes, save_recording
from learn2adapt.envs.schedules import wrap_schedule
from learn2adapt.errors import ConfigError
from learn2adapt.run.build import make_envs
from learn2adapt.run.config import RunConfig, check_schedule
from learn2adapt.run.rollout import Policy, RandomPolicy, run_episodes
from learn2adapt.run.run_dir import check_writable
from learn2adapt.run.state import RunState


def record(
    cfg: RunConfig,
    episodes: int,
    out: Path,
    run: RunState | None = None,
    split: str = "train",
    schedule: str = "fixed",
    seed: int | None = None,
    progress: bool = True,
) -> Recording:
    """Collect ``episodes`` episodes of ``cfg.env`` and write them to ``out`` (its folder created and
    checked writable before anything runs).

    Args:
        cfg: the environment, episode length and number of environments stepped at once.
        episodes: how many episodes (>= 1).
        out: the ``.npz`` file.
        run: a trained model-based run whose controller acts; ``None``: uniform random actions.
        split: where each episode's task is drawn from ("train" or "test").
        schedule: a task schedule within episodes (``fixed``: none).
        seed: seeds the tasks, the resets and the actions (default ``cfg.seed``).
        progress: show a progress bar.
    """
    if episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    if split not in ("train", "test"):
        raise ConfigError(f"--split must be train or test (got {split!r})")
    check_schedule(schedule)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_writable(out.parent)
    seed = cfg.seed if seed is None else seed
    envs: list[gym.Env] = make_envs(cfg, min(cfg.num_envs, episodes))
    if schedule and schedule != "fixed":
        envs = [wrap_schedule(env, schedule) for env in envs]
    rng = np.random.default_rng(seed)
    base: Any = envs[0].unwrapped  # a TaskEnv
    tasks = [base.sample_task(split, rng) for _ in range(episodes)]
    seeds = rng.integers(0, 2**31 - 1, size=episodes)
    policy: Policy
    if run is None:
        space = envs[0].action_space
        assert isinstance(space, gym.spaces.Box)
        policy, name = RandomPolicy(space, len(envs), rng), "random"
    else:
        policy, name = run.controller(envs, seed), f"{run.cfg.algo} controller ({run.cfg.planner.name})"
    start = time.time()
    stamps: dict[int, list[float]] = {}

    def stamp(k: int, t: int, reward: float, info: dict, slot: int) -> None:
        stamps.setdefault(k, []).append(time.time() - start)

    try:
        collected = run_episodes(
            envs,
            policy,
            episodes,
            lambda k: (tasks[k], int(seeds[k])),
            desc="record",
            progress=progress,
            on_step=stamp,
        )
    finally:
        for env in envs:
            env.close()
    times = [np.asarray(stamps.get(k, [])[: len(ep)], np.float64) for k, ep in enumerate(collected)]
    times = [t if len(t) == len(ep) else np.full(len(ep), np.nan) for t, ep in zip(times, collected)]
    rec = from_episodes(collected, times, env=cfg.env, policy=name)
    save_recording(rec, out)
    return rec
