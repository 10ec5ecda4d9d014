"""The typed configuration of a run, its presets, and ``key=value`` overrides.

A run is described by one :class:`RunConfig`; every field (nested ones by a
dotted path such as ``planner.horizon``) can be overridden from the command
line, and the fully resolved config is saved in the run directory. Presets live
in ``learn2adapt/presets/<family>.toml``, one file per environment family,
each with a ``[quick]`` and a ``[paper]`` table.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.data.segment_sampler import SEGMENT_EPOCHS
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.planning.config import PlannerConfig


class ConfigError(ValueError):
    """A bad configuration: unknown key, unparsable value, impossible setting."""


class UnknownName(ConfigError):
    """An unknown environment, algorithm or benchmark name."""


def check_env(env_id: str) -> None:
    """Raise :class:`UnknownName` listing the registered ids if ``env_id`` is not one."""
    from learn2adapt.envs import registered_ids  # noqa: PLC0415  (registration is lazy)

    ids = registered_ids()
    if env_id not in ids:
        raise UnknownName(f"unknown environment {env_id!r}; run `learn2adapt envs` to list them ({', '.join(ids)})")


def check_device(device: str) -> None:
    """Raise :class:`ConfigError` unless this torch can run on ``device`` (before any work starts)."""
    import torch  # noqa: PLC0415  (config parsing alone does not need torch)

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: this torch build has no usable CUDA device "
                              "(torch.cuda.is_available() is False); install a CUDA build of torch or use device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")


def check_algo(algo: str) -> None:
    """Raise :class:`UnknownName` listing the algorithms if ``algo`` is not one."""
    from learn2adapt.adaptation import ALGORITHMS  # noqa: PLC0415

    if algo not in ALGORITHMS:
        raise UnknownName(f"unknown algorithm {algo!r}; available: {', '.join(ALGORITHMS)}")


@dataclass
class EvalConfig:
    """Held-out evaluation."""

    episodes_per_task: int = field(default=5, metadata={"help": "episodes per held-out test task"})
    episode_length: int = field(default=0, metadata={"help": "steps per evaluation episode (0: as in training)"})
    schedule: str = field(default="fixed", metadata={"help": "task schedule during evaluation episodes, e.g. fixed | switch:t=100 (see `learn2adapt envs`)"})


@dataclass
class RunConfig:
    """Everything that defines a training run (Nagabandi et al., 2019, Alg. 1-2)."""

    env: str = field(default="learn2adapt/PendulumVaried-v0", metadata={"help": "environment id (see `learn2adapt envs`)"})
    algo: str = field(default="mb", metadata={"help": "mb | mbde | grbal | rebal"})
    seed: int = field(default=0, metadata={"help": "seed of every random number generator of the run"})
    device: str = field(default="cpu", metadata={"help": "torch device: cpu | cuda | cuda:N"})
    iterations: int = field(default=5, metadata={"help": "MPC collection iterations after the random-action iteration 0"})
    random_episodes: int = field(default=10, metadata={"help": "episodes of random actions in iteration 0"})
    episodes_per_iteration: int = field(default=5, metadata={"help": "episodes collected with MPC per iteration (n_S = this x episode_length steps between model updates)"})
    episode_length: int = field(default=200, metadata={"help": "maximum steps per training episode"})
    num_envs: int = field(default=5, metadata={"help": "environments stepped (and planned for) at once while collecting"})
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> "RunConfig":
        """Reject unknown names and impossible settings with a message that says what to change."""
        check_env(self.env)
        check_algo(self.algo)
        check_device(self.device)
        checks = [
            (self.iterations >= 0, "iterations must be >= 0"),
            (self.random_episodes >= 1, "random_episodes must be >= 1 (iteration 0 needs data)"),
            (self.episodes_per_iteration >= 1, "episodes_per_iteration must be >= 1"),
            (self.episode_length >= 1, "episode_length must be >= 1"),
            (self.num_envs >= 1, "num_envs must be >= 1"),
            (self.adaptation.past >= 1 and self.adaptation.future >= 1, "adaptation.past and adaptation.future must be >= 1"),
            (self.adaptation.past + self.adaptation.future <= self.episode_length,
             f"adaptation.past + adaptation.future ({self.adaptation.past + self.adaptation.future}) "
             f"exceeds episode_length ({self.episode_length}): no segment fits in an episode"),
            (0.0 <= self.fit.val_fraction < 1.0, "fit.val_fraction must be in [0, 1)"),
            (self.fit.segment_epoch in SEGMENT_EPOCHS,
             f"fit.segment_epoch must be one of {', '.join(SEGMENT_EPOCHS)} (got {self.fit.segment_epoch!r})"),
            (all(h >= 1 for h in self.model.hidden), "model.hidden widths must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


# --- dict <-> dataclass ---------------------------------------------------------------------
def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (a TOML value, JSON value or CLI string) to type ``tp``."""
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            # "512x512" or "512,512" for layer widths
            text = value.replace("x", ",") if item is int else value
            value = [v for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item, key) for v in value]
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: cannot read {value!r} as {getattr(tp, '__name__', tp)}") from None
    raise ConfigError(f"{key}: unsupported field type {tp}")


def _unknown_key(key: str, known: Iterable[str]) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `learn2adapt options` to list them"
    return ConfigError(f"unknown config key {key!r}{hint}")


def update(cfg: Any, values: dict[str, Any], prefix: str = "") -> Any:
    """Apply a nested dict of values to a dataclass instance in place."""
    types = _field_types(type(cfg))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in types:
            raise _unknown_key(key, all_keys(cfg, prefix))
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table of options, got {value!r}")
            update(current, value, f"{key}.")
        else:
            setattr(cfg, name, _coerce(value, types[name], key))
    return cfg


def all_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted option name of a config."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out += all_keys(value, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def describe_options(cfg: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, current value, help)`` for every option."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out += describe_options(value, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", json.dumps(value), f.metadata.get("help", "")))
    return out


def apply_overrides(cfg: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """Apply ``key=value`` strings (dotted keys for nested options)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        nested: dict[str, Any] = {}
        node = nested
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        update(cfg, nested)
    return cfg


def from_dict(values: dict[str, Any]) -> RunConfig:
    return update(RunConfig(), values)


def save_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(json.dumps(to_dict(cfg), indent=2) + "\n")


def load_config(path: Path) -> RunConfig:
    return from_dict(json.loads(path.read_text()))


# --- presets ------------------------------------------------------------------------------
def _preset_files() -> dict[str, dict[str, Any]]:
    out = {}
    for entry in resources.files("learn2adapt.presets").iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name[: -len(".toml")]] = tomllib.loads(entry.read_text())
    return out


def list_presets() -> dict[str, dict[str, Any]]:
    """Preset files by family name: ``{family: {"env": id, "quick": {...}, "paper": {...}}}``."""
    return _preset_files()


def family_of(env_id: str) -> str | None:
    for family, data in _preset_files().items():
        if data.get("env") == env_id:
            return family
    return None


def preset_config(env_id: str, preset: str = "quick", algo: str | None = None) -> RunConfig:
    """The resolved config of ``preset`` for ``env_id`` (and ``algo``, whose table overrides).

    Preset tables may hold per-algorithm sub-tables, e.g. ``[quick.grbal]``, applied
    when that algorithm is chosen.
    """
    family = family_of(env_id)
    cfg = RunConfig(env=env_id)
    if algo is not None:
        cfg.algo = algo
    if family is None:
        return cfg
    data = _preset_files()[family]
    if preset not in data:
        raise ConfigError(f"preset {preset!r} not defined for {env_id} (family {family}); available: "
                          + ", ".join(k for k, v in data.items() if isinstance(v, dict)))
    table = dict(data[preset])
    algo_tables = {k: table.pop(k) for k in list(table) if k in ("mb", "mbde", "grbal", "rebal")}
    update(cfg, table)
    if cfg.algo in algo_tables:
        update(cfg, algo_tables[cfg.algo])
    cfg.env = env_id
    return cfg
