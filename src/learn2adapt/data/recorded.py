"""Recorded trajectories on disk: what ``learn2adapt record`` writes and ``train --offline`` reads.

A recording is one NumPy ``.npz`` file (read with ``allow_pickle=False``: loading it runs no
code) of ``N`` transitions, stored episode after episode in time order:

=============  ==============  ====================================================================
array          shape, dtype    meaning
=============  ==============  ====================================================================
``obs``        (N, d_o) f32    observation before the action
``act``        (N, d_a) f32    action applied
``next_obs``   (N, d_o) f32    observation after it
``reward``     (N,) f32        reward of the transition
``terminated`` (N,) bool       the episode ended in a terminal state at this transition
``episode``    (N,) i64        episode index: 0, 0, ..., 1, 1, ... (non-decreasing, from 0, no gaps)
``timestamp``  (N,) f64        seconds since the recording started (NaN where unknown)
``task``       (N,) i64        index into ``meta["tasks"]`` of the task in force; -1 where unknown
``meta``       () str          JSON: ``format`` ("learn2adapt-transitions"), ``version`` (1), ``env``
                               (the Gymnasium id, optional), ``tasks`` (list of task dicts),
                               ``policy`` (what acted, free text)
=============  ==============  ====================================================================

Only the time order matters to GrBAL and ReBAL, which meta-train on windows of consecutive
transitions; task labels are kept where known (for reports), never required. A log of a real
robot is written in this format by the user's own code (:func:`save_recording`). A Minari
dataset on a local path (:mod:`learn2adapt.data.minari`) is read into the same arrays and checked
the same way.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learn2adapt.data.minari import is_minari, minari_file, read_minari
from learn2adapt.data.trajectory_buffer import Episode, Task
from learn2adapt.errors import ConfigError

FORMAT, VERSION = "learn2adapt-transitions", 1
#: Arrays every recording holds, with their dimensionality.
ARRAYS = {
    "obs": 2,
    "act": 2,
    "next_obs": 2,
    "reward": 1,
    "terminated": 1,
    "episode": 1,
    "timestamp": 1,
    "task": 1,
}


@dataclass
class Recording:
    """Transitions of whole episodes, in time order (the arrays of the module docstring)."""

    obs: np.ndarray
    act: np.ndarray
    next_obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    episode: np.ndarray
    timestamp: np.ndarray
    task: np.ndarray
    tasks: list[Task] = field(default_factory=list)
    env: str = ""
    policy: str = ""

    @property
    def num_episodes(self) -> int:
        return int(self.episode[-1]) + 1 if len(self.episode) else 0

    def episodes(self) -> list[Episode]:
        """The recording as the training loop's :class:`Episode` s (unknown tasks as ``{}``)."""
        out = []
        bounds = np.flatnonzero(np.diff(self.episode)) + 1
        for part in np.split(np.arange(len(self.episode)), bounds):
            tasks = [self.tasks[i] if i >= 0 else {} for i in self.task[part]]
            out.append(
                Episode(
                    self.obs[part], self.act[part], self.next_obs[part], self.reward[part], self.terminated[part], tasks
                )
            )
        return out


def from_episodes(
    episodes: Sequence[Episode], timestamps: Sequence[np.ndarray] | None = None, env: str = "", policy: str = ""
) -> Recording:
    """A recording of ``episodes`` (``timestamps``: one array of seconds per episode, else NaN)."""
    tasks: list[Task] = []
    index: dict[str, int] = {}
    task_ids = []
    for ep in episodes:
        for t in ep.tasks:
            key = json.dumps(t, sort_keys=True)
            if key not in index:
                index[key] = len(tasks)
                tasks.append(dict(t))
            task_ids.append(index[key])
    cat = lambda name: np.concatenate([getattr(ep, name) for ep in episodes])  # noqa: E731
    stamps = (
        np.concatenate([np.asarray(s, np.float64) for s in timestamps])
        if timestamps is not None
        else np.full(sum(len(ep) for ep in episodes), np.nan)
    )
    return Recording(
        cat("obs").astype(np.float32),
        cat("act").astype(np.float32),
        cat("next_obs").astype(np.float32),
        cat("reward").astype(np.float32),
        cat("terminated").astype(bool),
        np.concatenate([np.full(len(ep), k, np.int64) for k, ep in enumerate(episodes)]),
        stamps,
        np.asarray(task_ids, np.int64),
        tasks,
        env,
        policy,
    )


def save_recording(rec: Recording, path: Path) -> None:
    """Write ``rec`` to ``path`` (``.npz``) atomically: a partial file never has the final name."""
    path = Path(path)
    meta = {"format": FORMAT, "version": VERSION, "env": rec.env, "tasks": rec.tasks, "policy": rec.policy}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **{name: getattr(rec, name) for name in ARRAYS}, meta=np.array(json.dumps(meta)))
    tmp.replace(path)


def file_digest(path: Path) -> str:
    """SHA-256 of a file (what an offline run records of the data it was trained on; of a Minari
    dataset, its HDF5 file)."""
    if is_minari(Path(path)):
        path = minari_file(Path(path))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_recording(path: Path, obs_dim: int | None = None, act_dim: int | None = None) -> Recording:
    """Read and check a recording; every problem is one :class:`ConfigError` line naming it.

    Args:
        path: the ``.npz`` file.
        obs_dim, act_dim: the sizes the environment has (checked when given).
    """
    path = Path(path)
    where = f"--offline {path}"
    if is_minari(path):
        arrays, meta = read_minari(path)
    else:
        arrays = _read(path)
        missing = [name for name in (*ARRAYS, "meta") if name not in arrays]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)} (the format: learn2adapt.data.recorded)")
        meta = _meta(arrays.pop("meta"), where)
    _check_arrays(arrays, where, obs_dim, act_dim)
    tasks = meta.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise ConfigError(f"{where}: meta.tasks must be a list of task dicts")
    task = arrays["task"]
    if task.size and (task.min() < -1 or task.max() >= len(tasks)):
        raise ConfigError(f"{where}: task indexes must be -1 (unknown) or within meta.tasks ({len(tasks)} tasks)")
    return Recording(
        **{k: arrays[k] for k in ARRAYS},
        tasks=tasks,
        env=str(meta.get("env", "")),
        policy=str(meta.get("policy", "")),
    )


def _read(path: Path, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays ``names`` (all: ``None``) of a recording, each problem opening it one line."""
    where = f"--offline {path}"
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in (data.files if names is None else names) if name in data.files}
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ConfigError(f"{where} is not a recording (.npz, docs/your-robot.md): {e}") from None


def _meta(value: np.ndarray, where: str) -> dict[str, Any]:
    try:
        meta = json.loads(str(value))
    except json.JSONDecodeError:
        raise ConfigError(f"{where}: meta is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConfigError(f"{where}: meta.format must be {FORMAT!r}")
    return meta


def recorded_env(path: Path) -> str:
    """The environment id a recording (or a Minari dataset) names (``""`` if none), reading its
    ``meta`` alone."""
    if is_minari(Path(path)):
        return read_minari(Path(path))[1]["env"]
    arrays = _read(Path(path), ["meta"])
    if "meta" not in arrays:
        raise ConfigError(f"--offline {path}: missing meta (the format: learn2adapt.data.recorded)")
    return str(_meta(arrays["meta"], f"--offline {path}").get("env", ""))


def _check_arrays(arrays: dict[str, np.ndarray], where: str, obs_dim: int | None, act_dim: int | None) -> None:
    for name, ndim in ARRAYS.items():
        if arrays[name].ndim != ndim:
            raise ConfigError(f"{where}: {name} must have {ndim} dimension(s), has shape {arrays[name].shape}")
    n = len(arrays["obs"])
    lengths = {name: len(a) for name, a in arrays.items() if len(a) != n}
    if lengths:
        name, size = next(iter(lengths.items()))
        raise ConfigError(
            f"{where}: {name} holds {size} transitions, obs {n}: every array needs one row per transition"
        )
    if n == 0:
        raise ConfigError(f"{where} holds zero episodes")
    if arrays["next_obs"].shape[1] != arrays["obs"].shape[1]:
        raise ConfigError(f"{where}: next_obs has {arrays['next_obs'].shape[1]} columns, obs {arrays['obs'].shape[1]}")
    for name, want in (("obs", obs_dim), ("act", act_dim)):
        if want is not None and arrays[name].shape[1] != want:
            raise ConfigError(f"{where}: {name} has {arrays[name].shape[1]} columns; the environment's has {want}")
    for name in ("obs", "act", "next_obs", "reward"):
        bad = ~np.isfinite(arrays[name].astype(np.float64)).reshape(n, -1).all(axis=1)
        if bad.any():
            raise ConfigError(f"{where}: {name} is not finite at transition {int(np.argmax(bad))}")
    episode = arrays["episode"]
    steps = np.diff(episode)
    if episode[0] != 0 or (steps < 0).any() or (steps > 1).any():
        raise ConfigError(f"{where}: episode must count 0, 0, ..., 1, 1, ... in time order (non-decreasing, no gaps)")
