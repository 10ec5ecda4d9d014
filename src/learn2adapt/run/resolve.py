"""A run's configuration from the options a command line gives: ``--env``, ``--preset``, ``--algo``,
``--set``, ``--offline``, ``--seed`` (``learn2adapt train``, ``record``, ``options``, ``envs``, ``oracle``).

The environment is ``--env``, else the one a preset file names, else the one a recording was made
on, else :data:`DEFAULT_ENV`; the preset is ``--preset``, else :data:`DEFAULT_PRESET`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from learn2adapt.data.recorded import recorded_env
from learn2adapt.envs import describe_all, short_name
from learn2adapt.envs.catalog import describe_env
from learn2adapt.run.config import RunConfig
from learn2adapt.run.options import apply_overrides, check_read
from learn2adapt.run.presets import preset_config, preset_env

#: ``--env`` and ``--preset`` when not given.
DEFAULT_ENV, DEFAULT_PRESET = "learn2adapt/PendulumVaried-v0", "quick"


def env_of(env: str | None, preset: str | None, offline: str | None = None) -> str:
    """``env``, else the env a ``preset`` FILE.toml names, else the one the recording ``offline`` was
    made on, else :data:`DEFAULT_ENV`."""
    recorded = recorded_env(Path(offline)) if offline and not (env or preset) else None
    return env or preset_env(preset) or recorded or DEFAULT_ENV


def preset_run_config(
    env: str | None, preset: str | None, algo: str | None, sets: Sequence[str] = (), offline: str | None = None
) -> RunConfig:
    """The preset's configuration with ``sets`` (``KEY=VALUE``) applied, not validated."""
    return apply_overrides(preset_config(env_of(env, preset, offline), preset or DEFAULT_PRESET, algo), sets)


def resolve_config(
    env: str | None,
    preset: str | None,
    algo: str | None,
    sets: Sequence[str] = (),
    offline: str | None = None,
    seed: int | None = None,
) -> RunConfig:
    """A new run's validated configuration: the preset's, ``sets`` applied, then ``offline`` and ``seed``."""
    cfg = preset_run_config(env, preset, algo, sets, offline)
    if offline:
        cfg.offline = offline
    if seed is not None:
        cfg.seed = seed
    cfg.validate()
    check_read(sets, [cfg.algo])
    return cfg


def default_run_dir(cfg: RunConfig) -> Path:
    """``runs/<env>-<algo>-s<seed>-<date-time>``: where ``train`` writes a run not given ``--run-dir``."""
    return Path("runs") / f"{short_name(cfg.env)}-{cfg.algo}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def described_envs(env: str | None, preset: str | None, sets: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every family (:func:`~learn2adapt.envs.describe_all`), or with any of ``env``, ``preset``,
    ``sets``, the one environment a run with these options would see (its task space)."""
    if not (env or preset or sets):
        return describe_all()
    # Not validated as a run (a reward is not needed to list tasks); make_env checks the task space.
    cfg = preset_run_config(env, preset, None, sets)
    return [describe_env(cfg.env, cfg.task_space)]
