"""Minari datasets read from a local path: the offline route for data recorded by other tools.

`Minari <https://minari.farama.org>`_ (Farama's successor to D4RL) stores a dataset as a directory
``<name>/data/main_data.hdf5`` (HDF5 storage; its Arrow storage is not read here) with one group
``episode_<id>`` per episode holding ``observations`` (``T + 1`` rows: the first and the last
included), ``actions``, ``rewards``, ``terminations`` and ``truncations`` (``T`` rows each), and
``data/metadata.json`` beside it (``env_spec``: the Gymnasium spec as JSON, when the dataset
has one).

:func:`read_minari` turns one into the arrays of a learn2adapt recording
(:mod:`learn2adapt.data.recorded`, which checks them like any recording): episodes in the order
of their ids, timestamps and tasks unknown. Nothing is downloaded: ``train --offline PATH`` takes
the dataset's directory or its ``.hdf5`` file (``minari download`` fetches one beforehand). Reading
needs ``h5py`` (``pip install 'learn2adapt[minari]'``); Minari itself is not needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from learn2adapt.errors import ConfigError

#: File names a Minari dataset is recognised by.
HDF5_SUFFIXES = (".hdf5", ".h5")
FIELDS = ("observations", "actions", "rewards", "terminations", "truncations")


def is_minari(path: Path) -> bool:
    """Whether ``path`` names a Minari dataset (its directory or its HDF5 file), not an ``.npz``."""
    return Path(path).is_dir() or Path(path).suffix in HDF5_SUFFIXES


def minari_file(path: Path) -> Path:
    """The HDF5 file of the dataset at ``path`` (a dataset directory, its ``data/``, or the file)."""
    path = Path(path)
    if path.suffix in HDF5_SUFFIXES:
        return path
    for candidate in (path / "data" / "main_data.hdf5", path / "main_data.hdf5"):
        if candidate.exists():
            return candidate
    raise ConfigError(
        f"--offline {path}: a directory must be a Minari dataset holding data/main_data.hdf5 "
        "(HDF5 storage; a learn2adapt recording is one .npz file)"
    )


def read_minari(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The recording arrays and meta of a local Minari dataset (see the module docstring).

    Raises:
        ConfigError: h5py missing, no such dataset, an episode with missing or mismatched fields,
            or observations that are not flat arrays (dict or tuple spaces).
    """
    try:
        import h5py
    except ImportError:
        raise ConfigError("--offline: reading a Minari dataset needs h5py: pip install 'learn2adapt[minari]'") from None
    file = minari_file(path)
    where = f"--offline {path}"
    if not file.exists():
        raise ConfigError(f"{where}: no such file")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "next_obs", "reward", "terminated", "episode")}
    try:
        with h5py.File(file, "r") as f:
            names = sorted((n for n in f if re.fullmatch(r"episode_\d+", n)), key=lambda n: int(n.split("_")[1]))
            for k, name in enumerate(names):
                group = f[name]
                missing = [field for field in FIELDS if field not in group]
                if missing:
                    raise ConfigError(
                        f"{where}: {name} has no {', '.join(missing)} (a Minari episode needs {', '.join(FIELDS)})"
                    )
                if not all(isinstance(group[field], h5py.Dataset) for field in FIELDS):
                    raise ConfigError(
                        f"{where}: {name}: observations and actions must be flat arrays, not dict or tuple spaces"
                    )
                obs, act = np.asarray(group["observations"]), np.asarray(group["actions"])
                steps = len(act)
                if len(obs) != steps + 1 or any(len(group[field]) != steps for field in FIELDS[2:]):
                    raise ConfigError(
                        f"{where}: {name} holds {len(obs)} observations for {steps} actions "
                        "(Minari stores T + 1 observations and T of everything else)"
                    )
                parts["obs"].append(obs[:-1].reshape(steps, -1))
                parts["next_obs"].append(obs[1:].reshape(steps, -1))
                parts["act"].append(act.reshape(steps, -1))
                parts["reward"].append(np.asarray(group["rewards"]).reshape(steps))
                parts["terminated"].append(np.asarray(group["terminations"]).reshape(steps))
                parts["episode"].append(np.full(steps, k, np.int64))
    except OSError as e:
        raise ConfigError(f"{where}: {file} is not an HDF5 file: {e}") from None
    if not parts["obs"]:
        raise ConfigError(f"{where} holds zero episodes")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    arrays = {
        **{k: arrays[k].astype(np.float32) for k in ("obs", "act", "next_obs", "reward")},
        "terminated": arrays["terminated"].astype(bool),
        "episode": arrays["episode"],
        "timestamp": np.full(len(arrays["obs"]), np.nan),
        "task": np.full(len(arrays["obs"]), -1, np.int64),
    }
    return arrays, {"env": _env_id(file), "tasks": [], "policy": f"Minari dataset {file.parent.parent.name}"}


def _env_id(file: Path) -> str:
    """The Gymnasium id in the dataset's ``metadata.json`` (``env_spec``), or ``""``."""
    meta_file = file.parent / "metadata.json"
    try:
        spec = json.loads(meta_file.read_text()).get("env_spec") or "{}"
        return str((json.loads(spec) if isinstance(spec, str) else spec).get("id") or "")
    except (OSError, json.JSONDecodeError, AttributeError):
        return ""
