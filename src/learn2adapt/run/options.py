"""Options of a run as text and back: coercion, ``key=value`` overrides, migration, saved configs.

Every field of a :class:`~learn2adapt.run.config.RunConfig` (nested ones by a dotted path such
as ``planner.horizon``) can be set from a TOML table, a saved ``config.json`` or a command-line
``--set key=value``; each value is coerced to the field's type (``512x512`` to a list of widths,
``on`` to a bool), an unknown key is refused with the closest names, and the fully resolved
config is saved in the run directory. A config saved by an earlier version is migrated to
today's layout on loading.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from learn2adapt.errors import ConfigError
from learn2adapt.run.config import RunConfig, _field_types, check_device
from learn2adapt.run.run_dir import atomic_write_text


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


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


def describe_options(cfg: Any, prefix: str = "", algo: str | None = None) -> list[tuple[str, str, str]]:
    """``(dotted key, current value, help)`` for every option (with ``algo``: every option it reads)."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if algo is not None and algo not in (readers(key) or (algo,)):
            continue
        if dataclasses.is_dataclass(value):
            out += describe_options(value, f"{key}.", algo)
        else:
            out.append((key, json.dumps(value), f.metadata.get("help", "")))
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


def readers(key: str) -> tuple[str, ...] | None:
    """The algorithms that read option ``key`` (dotted), from the ``algos`` metadata of the
    innermost field on its path that has one; None: every algorithm (or not an option)."""
    cls: Any = RunConfig
    found = None
    for part in key.split("."):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return found
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return found
        found = fields[part].metadata.get("algos", found)
        cls = _field_types(cls)[part]
    return found


def check_read(overrides: Iterable[str], algos: Iterable[str]) -> None:
    """Refuse a ``key=value`` that none of ``algos`` reads: an option without effect is an error,
    never silently ignored (a comparison passes all of its algorithms: one reader is enough)."""
    algos = list(algos)
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        read = readers(key)
        if read is not None and not set(algos) & set(read):
            raise ConfigError(
                f"--set {key} has no effect with --algo {','.join(algos)}: only {', '.join(read)} read it; "
                "drop it, or run one of those"
            )


def read_by(overrides: Iterable[str], algo: str) -> list[str]:
    """The ``key=value`` items of ``overrides`` that ``algo`` reads (several rules evaluated with one
    set of options each take their own; :func:`check_read` refuses one that none reads)."""
    return [item for item in overrides if algo in (readers(item.split("=", 1)[0].strip()) or (algo,))]


#: Planner options that were flat keys before the per-planner sections (``planner.cem_iterations``).
_FLAT_PLANNER_PREFIXES = ("cem_", "mppi_", "icem_")


def _migrate(values: dict[str, Any]) -> dict[str, Any]:
    """A saved config in today's layout (runs written before 0.2): ``planner.cem_x`` -> ``planner.cem.x``,
    ReBAL's ``adaptation.rnn_short_past`` -> ``adaptation.short_past``; a run written before
    ``fit.val_split`` or ``fit.select`` existed keeps the validation split and the choice of
    weights it was trained with (``redraw``, ``prefit``)."""
    fit = values.get("fit")
    if isinstance(fit, dict):
        fit.setdefault("val_split", "redraw")
        fit.setdefault("select", "prefit")
    adaptation = values.get("adaptation")
    if isinstance(adaptation, dict) and "rnn_short_past" in adaptation:  # ReBAL's own option before 0.2
        value = adaptation.pop("rnn_short_past")
        if values.get("algo") == "rebal":
            adaptation["short_past"] = value
    planner = values.get("planner")
    if isinstance(planner, dict):
        for key in [k for k in planner if k.startswith(_FLAT_PLANNER_PREFIXES)]:
            section, option = key.split("_", 1)
            planner.setdefault(section, {})[option] = planner.pop(key)
    return values


def from_dict(values: dict[str, Any]) -> RunConfig:
    return update(RunConfig(), _migrate(values))


def config_text(cfg: RunConfig) -> str:
    """The ``config.json`` text of ``cfg`` (the checkpoint stores its digest)."""
    return json.dumps(to_dict(cfg), indent=2) + "\n"


def save_config(cfg: RunConfig, path: Path) -> None:
    atomic_write_text(Path(path), config_text(cfg))


#: Saved configurations already reported as loaded on the CPU (see :func:`load_config`).
_NOTED_ON_CPU: set[Path] = set()


def load_config(path: Path, *, on_this_machine: bool = False, device: str | None = None) -> RunConfig:
    """Read and validate a saved ``config.json``.

    Args:
        path: the file.
        on_this_machine: a run loaded to be used here (evaluated, diagnosed, filmed): if its
            ``device`` is one this machine cannot use (trained on a GPU, evaluated on a laptop), it
            is loaded on the CPU instead, with a one-line note. Without it (a run loaded to be
            continued), such a device is refused with the resume that moves the run here.
        device: the device to run on instead of the saved one (a resume moved to another
            machine, ``--set device=...``).

    Raises:
        ConfigError: the file is empty, not JSON, or holds an impossible configuration (one line
            saying what to do).
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        what = "empty" if path.stat().st_size == 0 else f"not valid JSON ({type(e).__name__})"
        if (path.parent / "checkpoint.pt").exists():  # a trained run: never advise deleting it
            raise ConfigError(
                f"{path} is {what}, but {path.parent} holds a checkpoint (a trained run; do not delete it): "
                f"restore {path.name} from a copy of the run; the checkpoint's configuration digest checks "
                "that the restored file is the run's own"
            ) from None
        raise ConfigError(
            f"{path} is {what}: the run was stopped while it was being set up; delete {path.parent} "
            f"(or run `learn2adapt train --run-dir {path.parent}` to start it again in place)"
        ) from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} does not hold a configuration (a JSON object)")
    if device is not None:
        values["device"] = device
    elif isinstance(values.get("device"), str):
        try:
            check_device(values["device"])
        except ConfigError:
            if not on_this_machine:
                raise ConfigError(
                    f"{path.parent} ran on {values['device']!r}, which this machine cannot use: continue it here "
                    f"with `learn2adapt train --resume {path.parent} --set device={_usable_device()}`"
                ) from None
            if path.resolve() not in _NOTED_ON_CPU:  # once per run and process
                _NOTED_ON_CPU.add(path.resolve())
                print(
                    f"note: {path.parent} ran on {values['device']!r}, which this machine cannot use: "
                    "loading it on the cpu",
                    file=sys.stderr,
                )
            values["device"] = "cpu"
    try:
        return from_dict(values).validate()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _usable_device() -> str:
    """The device a run moved to this machine is offered: ``cuda`` where torch can use one, else ``cpu``."""
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"
