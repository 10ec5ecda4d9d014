"""Transition storage that keeps episode boundaries and the task of every step.

Transitions are stored flat and contiguous per episode, so a segment of
consecutive transitions is a slice; ``episode_id`` marks the boundaries and
``task_id`` indexes ``tasks`` (JSON-serialisable dicts, one per distinct task).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Task = dict[str, Any]

_FIELDS = ("obs", "act", "next_obs", "reward", "terminated", "episode_id", "task_id", "step")


@dataclass
class Episode:
    """One finished episode, as collected (T transitions)."""

    obs: np.ndarray  # (T, obs_dim)
    act: np.ndarray  # (T, act_dim)
    next_obs: np.ndarray  # (T, obs_dim)
    reward: np.ndarray  # (T,)
    terminated: np.ndarray  # (T,) bool: the episode ended in a terminal state at this step
    tasks: Sequence[Task]  # (T,) the task in force at each step

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    @property
    def total_reward(self) -> float:
        return float(self.reward.sum())

    def first_non_finite(self) -> str | None:
        """``"<what> at step <t>"`` for the earliest NaN/inf the environment returned, else None
        (what ``train`` and ``eval`` refuse, rather than learn from or report it)."""
        found = []
        for what, values in (
            ("observation", self.next_obs),
            ("reward", self.reward),
            ("initial observation", self.obs),
        ):
            bad = ~np.isfinite(values.reshape(len(self), -1)).all(axis=1)
            if bad.any():
                found.append((int(np.argmax(bad)), what))
        if not found:
            return None
        step, what = min(found)
        return f"{what} at step {step}"


def first_non_finite(episodes: Sequence[Episode]) -> tuple[int, str] | None:
    """``(index, what)`` of the first of ``episodes`` holding a NaN/inf (:meth:`Episode.first_non_finite`),
    else None."""
    for k, ep in enumerate(episodes):
        bad = ep.first_non_finite()
        if bad is not None:
            return k, bad
    return None


class TrajectoryBuffer:
    """Growable store of episodes.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        capacity: initial capacity in transitions (grows by doubling).
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int = 4096) -> None:
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self._n = 0
        self._num_episodes = 0
        self.tasks: list[Task] = []
        self._task_index: dict[str, int] = {}
        self._data = self._allocate(max(1, capacity))

    def _allocate(self, capacity: int) -> dict[str, np.ndarray]:
        return {
            "obs": np.zeros((capacity, self.obs_dim), np.float32),
            "act": np.zeros((capacity, self.act_dim), np.float32),
            "next_obs": np.zeros((capacity, self.obs_dim), np.float32),
            "reward": np.zeros(capacity, np.float32),
            "terminated": np.zeros(capacity, bool),
            "episode_id": np.zeros(capacity, np.int64),
            "task_id": np.zeros(capacity, np.int64),
            "step": np.zeros(capacity, np.int64),
        }

    def __len__(self) -> int:
        return self._n

    @property
    def num_episodes(self) -> int:
        return self._num_episodes

    def _task_id(self, task: Task) -> int:
        key = json.dumps(task, sort_keys=True)
        if key not in self._task_index:
            self._task_index[key] = len(self.tasks)
            self.tasks.append(json.loads(key))
        return self._task_index[key]

    def add_episode(self, episode: Episode) -> None:
        """Append a whole episode (its transitions stay contiguous)."""
        t = len(episode)
        if t == 0:
            return
        if len(episode.tasks) != t:
            raise ValueError(f"episode has {t} transitions but {len(episode.tasks)} tasks")
        need = self._n + t
        capacity = self._data["reward"].shape[0]
        if need > capacity:
            new = self._allocate(max(need, 2 * capacity))
            for k, v in self._data.items():
                new[k][: self._n] = v[: self._n]
            self._data = new
        sl = slice(self._n, need)
        d = self._data
        d["obs"][sl] = episode.obs
        d["act"][sl] = episode.act
        d["next_obs"][sl] = episode.next_obs
        d["reward"][sl] = episode.reward
        d["terminated"][sl] = episode.terminated
        d["episode_id"][sl] = self._num_episodes
        d["task_id"][sl] = [self._task_id(task) for task in episode.tasks]
        d["step"][sl] = np.arange(t)
        self._n = need
        self._num_episodes += 1

    def __getattr__(self, name: str) -> np.ndarray:
        # Read-only views of the stored fields: buffer.obs, buffer.episode_id, ...
        if name in _FIELDS:
            return self.__dict__["_data"][name][: self.__dict__["_n"]]
        raise AttributeError(name)

    def task_at(self, index: int) -> Task:
        """The task in force at stored transition ``index``."""
        return self.tasks[int(self.task_id[index])]

    def episode_slices(self) -> list[slice]:
        """One slice per stored episode, in order."""
        if self._n == 0:
            return []
        starts = np.flatnonzero(self.step == 0)
        ends = np.append(starts[1:], self._n)
        return [slice(int(s), int(e)) for s, e in zip(starts, ends)]

    # --- persistence: plain arrays + JSON, loadable without executing code ----------------
    def state_dict(self) -> dict[str, Any]:
        """Arrays of the stored transitions plus the task table (JSON string)."""
        arrays = {k: np.ascontiguousarray(getattr(self, k)) for k in _FIELDS}
        return {"arrays": arrays, "tasks_json": json.dumps(self.tasks)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TrajectoryBuffer:
        arrays = state["arrays"]
        n = int(arrays["reward"].shape[0])
        buf = cls(arrays["obs"].shape[1], arrays["act"].shape[1], capacity=max(n, 1))
        for k in _FIELDS:
            buf._data[k][:n] = arrays[k]
        buf._n = n
        buf._num_episodes = int(arrays["episode_id"].max()) + 1 if n else 0
        buf.tasks = json.loads(state["tasks_json"])
        buf._task_index = {json.dumps(t, sort_keys=True): i for i, t in enumerate(buf.tasks)}
        buf.check()
        return buf

    def check(self) -> None:
        """Raise ``ValueError`` unless the stored arrays are consistent (loaded data are not trusted).

        Episodes are numbered 0, 1, ... in storage order, each a run of steps 0, 1, ...;
        every task id indexes the task table.
        """
        n = self._n
        if n == 0:
            return
        ep, step, task = self.episode_id, self.step, self.task_id
        starts = np.flatnonzero(np.diff(ep, prepend=-1) != 0)
        if ep[0] != 0 or np.any(np.diff(ep) < 0) or np.any(np.diff(ep[starts]) != 1):
            raise ValueError("episode ids are not 0, 1, 2, ... in storage order")
        expected = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
        if not np.array_equal(step, expected):
            raise ValueError("step counters do not restart at 0 with each episode")
        if task.min() < 0 or task.max() >= len(self.tasks):
            raise ValueError(f"task ids outside the task table (0..{len(self.tasks) - 1})")

    def save(self, path: str | Path) -> None:
        """Write to a ``.npz`` file (no pickled objects)."""
        state = self.state_dict()
        np.savez(path, tasks_json=np.array(state["tasks_json"]), **state["arrays"])

    @classmethod
    def load(cls, path: str | Path) -> TrajectoryBuffer:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in _FIELDS}
            tasks_json = str(f["tasks_json"])
        return cls.from_state_dict({"arrays": arrays, "tasks_json": tasks_json})


#: How ``split_episodes`` picks validation episodes (``fit.val_split``).
VAL_SPLITS = ("stable", "redraw")


def episode_draws(num_episodes: int) -> np.ndarray:
    """One uniform number per episode index, the same in every fit and run: the stable split holds
    out episode ``k`` when its draw is below ``val_fraction``."""
    return np.array([np.random.default_rng([_VAL_SPLIT_SEED, k]).random() for k in range(num_episodes)])


#: Seeds :func:`episode_draws` (any fixed number: the split must not depend on a run's seed stream).
_VAL_SPLIT_SEED = 20261127


def split_episodes(
    buffer: TrajectoryBuffer, val_fraction: float, rng: np.random.Generator, mode: str = "stable"
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over transitions: (train, validation), whole episodes to each side.

    Holding out whole episodes keeps validation segments from overlapping
    training ones. With a single episode, it falls back to a random split of
    transitions (segments may then straddle; acceptable for tiny smoke runs).

    ``mode="stable"`` holds out episode ``k`` when a draw fixed by ``k`` alone
    (:func:`episode_draws`) is below ``val_fraction``, episode 0 never (the newest episode while
    that holds out none). As the buffer grows, an episode validated on is never trained on
    afterwards, so a warm-started fit is never scored on data an earlier fit learnt.
    ``mode="redraw"`` draws ``round(val_fraction x episodes)`` of them anew at every fit (the
    behaviour before 2026-11-27): the model about to be refitted has then often trained on some
    of them, and early stopping, which compares every epoch with that model's score, can
    discard a whole fit.
    """
    n, n_ep = len(buffer), buffer.num_episodes
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    if mode not in VAL_SPLITS:
        raise ValueError(f"unknown validation split {mode!r}: use one of {', '.join(VAL_SPLITS)}")
    if n_ep >= 2 and val_fraction > 0:
        if mode == "stable":
            val_eps = 1 + np.flatnonzero(episode_draws(n_ep)[1:] < val_fraction)  # episode 0 always trains
            if val_eps.size == 0:
                val_eps = np.array([n_ep - 1])  # the newest episode: no fit has trained on it yet
        else:
            n_val = min(n_ep - 1, max(1, int(round(val_fraction * n_ep))))
            val_eps = rng.choice(n_ep, size=n_val, replace=False)
        val = np.isin(buffer.episode_id, val_eps)
    else:
        val = rng.random(n) < val_fraction
    return ~val, val
