"""Running episodes in several environments at once, with any policy.

All environments are stepped in lockstep so the policy plans for all of them
in one batched call; each keeps its own episode, task and history.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import gymnasium as gym
import numpy as np

from learn2adapt.data.trajectory_buffer import Episode, Task
from learn2adapt.errors import NonFiniteData
from learn2adapt.progress import progress_bar

if TYPE_CHECKING:
    from tqdm import tqdm


class Policy(Protocol):
    """What :func:`run_episodes` needs from a controller."""

    def reset(self, env_index: int) -> None:
        """A new episode starts in environment ``env_index``: forget its history."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions ``(E, act_dim)`` for observations ``(E, obs_dim)``."""

    def observe(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        """The transitions just taken, ``(E, ...)``, for online adaptation."""


class RandomPolicy:
    """Uniform random actions within the action bounds (iteration 0)."""

    def __init__(self, action_space: gym.spaces.Box, num_envs: int, rng: np.random.Generator) -> None:
        self.low, self.high = action_space.low, action_space.high
        self.num_envs, self.rng = num_envs, rng

    def reset(self, env_index: int) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, size=(self.num_envs, self.low.shape[0])).astype(np.float32)

    def observe(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        pass


class _EpisodeRecorder:
    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []
        self.act: list[np.ndarray] = []
        self.next_obs: list[np.ndarray] = []
        self.reward: list[float] = []
        self.terminated: list[bool] = []
        self.tasks: list[Task] = []

    def add(self, o, a, n, r, term, task) -> None:
        self.obs.append(o)
        self.act.append(a)
        self.next_obs.append(n)
        self.reward.append(r)
        self.terminated.append(term)
        self.tasks.append(task)

    def finish(self) -> Episode:
        return Episode(
            np.asarray(self.obs, np.float32),
            np.asarray(self.act, np.float32),
            np.asarray(self.next_obs, np.float32),
            np.asarray(self.reward, np.float32),
            np.asarray(self.terminated, bool),
            list(self.tasks),
        )


def _end_diverged(recorder: _EpisodeRecorder, desc: str, k: int, step: int, info: dict) -> None:
    """Warn that episode ``k`` ends at ``step`` because its simulation diverged (its transition is dropped)."""
    task = json.dumps(info.get("task", {}))
    if not recorder.obs:
        raise NonFiniteData(
            f"{desc}: the simulation diverged on the first step of episode {k} (task {task}): "
            "the task's parameters make the simulator unstable"
        )
    warnings.warn(
        f"{desc}: the simulation diverged at step {step} of episode {k} (task {task}); "
        "the episode ends before that step",
        RuntimeWarning,
        stacklevel=3,
    )


def run_episodes(
    envs: Sequence[gym.Env],
    policy: Policy,
    num_episodes: int,
    start_episode: Callable[[int], tuple[Task | None, int]],
    desc: str = "collect",
    progress: bool = True,
    on_step: Callable[[int, int, float, dict, int], None] | None = None,
    timing: dict[str, float] | None = None,
) -> list[Episode]:
    """Run ``num_episodes`` episodes over ``len(envs)`` environments in lockstep.

    Args:
        envs: environments (each with its own time limit).
        policy: controller for all environments at once.
        num_episodes: episodes to finish in total.
        start_episode: ``k -> (task or None, reset seed)`` for the k-th episode;
            a task is set on ``env.unwrapped`` before the reset.
        desc: progress-bar label.
        progress: show a progress bar (steps, with ETA).
        on_step: optional ``(episode k, step t, reward, info, environment slot)`` callback.
        timing: if given, ``policy_seconds`` (time in ``act`` + ``observe``: planning and
            adaptation) and ``env_seconds`` (time in ``env.step`` / ``reset``) are added to it.

    Returns:
        The finished episodes, in the order they were started.
    """
    lockstep = _Lockstep(envs, policy, num_episodes, start_episode)
    max_steps = getattr(envs[0].spec, "max_episode_steps", None) or 0
    bar = progress_bar(total=num_episodes * max_steps or None, desc=desc, leave=False, enabled=progress, unit="step")
    lockstep.fill()
    while len(lockstep.finished) < num_episodes:
        lockstep.step(desc, on_step, bar)
        lockstep.fill()
    bar.close()
    if timing is not None:
        for key, value in lockstep.clock.items():
            timing[key] = timing.get(key, 0.0) + value
    return [lockstep.finished[k] for k in range(num_episodes)]


class _Lockstep:
    """The episodes of :func:`run_episodes` in flight: one per environment slot, the next started as one ends."""

    def __init__(
        self,
        envs: Sequence[gym.Env],
        policy: Policy,
        num_episodes: int,
        start_episode: Callable[[int], tuple[Task | None, int]],
    ) -> None:
        self.envs, self.policy, self.num_episodes, self.start_episode = envs, policy, num_episodes, start_episode
        self.obs = np.zeros((len(envs), envs[0].observation_space.shape[0]), np.float32)
        self.slot_episode = [-1] * len(envs)  # the episode running in each slot (-1: none)
        self.steps = np.zeros(len(envs), np.int64)  # steps taken in each slot's episode
        self.recorders: dict[int, _EpisodeRecorder] = {}
        self.finished: dict[int, Episode] = {}
        self.next_k = 0
        self.clock = {"policy_seconds": 0.0, "env_seconds": 0.0}

    def fill(self) -> None:
        """Start the next episodes in the free slots, while any is left to start."""
        for slot in range(len(self.envs)):
            if self.slot_episode[slot] < 0 and self.next_k < self.num_episodes:
                self._start(slot)

    def _start(self, slot: int) -> None:
        k = self.next_k
        self.next_k += 1
        task, seed = self.start_episode(k)
        env = self.envs[slot]
        if task is not None:
            env.unwrapped.set_task(task)
        t0 = time.perf_counter()
        self.obs[slot], _ = env.reset(seed=seed)
        self.clock["env_seconds"] += time.perf_counter() - t0
        self.slot_episode[slot] = k
        self.recorders[k] = _EpisodeRecorder()
        self.policy.reset(slot)

    def _finish(self, slot: int) -> None:
        k = self.slot_episode[slot]
        self.finished[k] = self.recorders.pop(k).finish()
        self.slot_episode[slot] = -1
        self.steps[slot] = 0

    def step(self, desc: str, on_step: Callable[[int, int, float, dict, int], None] | None, bar: tqdm) -> None:
        """One step of every running episode: the policy acts for all at once, then observes the transitions."""
        t0 = time.perf_counter()
        actions = np.asarray(self.policy.act(self.obs), np.float32)
        self.clock["policy_seconds"] += time.perf_counter() - t0
        next_obs = self.obs.copy()
        for slot, env in enumerate(self.envs):
            k = self.slot_episode[slot]
            if k < 0:
                continue
            t0 = time.perf_counter()
            o2, r, term, trunc, info = env.step(actions[slot])
            self.clock["env_seconds"] += time.perf_counter() - t0
            if info.get("diverged"):  # the simulator blew up: end the episode before this step
                _end_diverged(self.recorders[k], desc, k, int(self.steps[slot]), info)
                self._finish(slot)
                continue  # next_obs[slot] stays the last real state
            next_obs[slot] = o2
            self.recorders[k].add(self.obs[slot].copy(), actions[slot], o2, float(r), bool(term), info.get("task", {}))
            if on_step is not None:
                on_step(k, int(self.steps[slot]), float(r), info, slot)
            self.steps[slot] += 1
            bar.update(1)
            if term or trunc:
                self._finish(slot)
        t0 = time.perf_counter()
        self.policy.observe(self.obs, actions, next_obs)
        self.clock["policy_seconds"] += time.perf_counter() - t0
        self.obs = next_obs


def forward_velocities(env: gym.Env, episodes: Sequence[Episode]) -> list[float] | None:
    """Each episode's mean forward velocity of the root (m/s), for locomotion families; else None.

    Read from the observations (the families' ``reward_spec.vel_index``), so a return can be told
    apart into progress and control cost.
    """
    vel_index = getattr(getattr(env.unwrapped, "reward_spec", None), "vel_index", None)
    if vel_index is None:
        return None
    return [float(ep.next_obs[:, vel_index].mean()) for ep in episodes]
