"""Presets: the named configurations of each environment family, resolved from TOML files.

Presets live in ``learn2adapt/presets/``: ``_base.toml`` holds one table per
protocol (``[quick]``, ``[paper]``) shared by every environment family, and
``<family>.toml`` (one file per family; a name starting with ``_`` is not a family)
holds the family's ``env`` and only what differs, as tables of the same names.
A family's presets are the base protocols plus any other table it defines. A
preset resolves by deep merge (a value of a later layer replaces the earlier one,
tables merge key by key):

1. the base table of the same name from ``_base.toml`` (none for a name it lacks;
   if it has a key ``base = "<table>"``, merged onto that base table, e.g. ``[medium]``
   is ``[quick]`` plus ``medium``'s values), or, if the family's table has a key
   ``base = "<preset>"``, that preset of the same family, itself resolved (e.g.
   PendulumVaried's ``[demo]`` is its resolved ``quick`` plus ``demo``'s values);
2. the family's table;
3. for the chosen algorithm, the sub-table of that name of the merged result
   (``[paper.mb]``, ``[paper.rebal]``, ...), applied over the rest.

``tests/data/resolved_presets.json`` is the snapshot of every resolved preset
(family x preset x algorithm); ``tests/unit/test_presets.py`` checks the files still
resolve to it, so a change of the files cannot silently change an experiment.
"""

from __future__ import annotations

import copy
import sys
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from learn2adapt.adaptation import ALGORITHMS
from learn2adapt.errors import ConfigError
from learn2adapt.run.config import RunConfig
from learn2adapt.run.options import update

#: The shared base of every family's presets (see the module docstring).
_BASE_FILE = "_base"
#: Preset sub-tables that apply to one algorithm only, e.g. ``[paper.mb]``.
_ALGO_TABLES = ALGORITHMS


def _read_presets() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(base, families)``: ``_base.toml`` and the family files, as written."""
    base: dict[str, Any] = {}
    families: dict[str, dict[str, Any]] = {}
    for entry in sorted(resources.files("learn2adapt.presets").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        name = entry.name[: -len(".toml")]
        data = _read_toml(entry.read_text(), f"presets/{entry.name}")
        if name == _BASE_FILE:
            base = data
        elif not name.startswith("_"):
            families[name] = data
    return base, families


def _preset_files() -> dict[str, dict[str, Any]]:
    """The family files as written (only their differences from ``_base.toml``), by family name."""
    return _read_presets()[1]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge into a new dict: ``over``'s values replace ``base``'s, tables merge key by key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _preset_names(base: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """A family's presets: the base protocols, then the family's other tables."""
    names = [k for k, v in base.items() if isinstance(v, dict)]
    return names + [k for k, v in data.items() if isinstance(v, dict) and k not in names]


def _resolve_preset(
    family: str, data: dict[str, Any], base: dict[str, Any], name: str, chain: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Steps 1-2 of the module docstring: the preset's table, per-algorithm sub-tables still inside."""
    if name in chain:
        raise ConfigError(f"presets/{family}.toml: preset {name!r} is its own base ({' -> '.join(chain + (name,))})")
    own = data.get(name, {})
    parent = own.get("base")
    if parent is None:
        start = _base_table(base, name)
    elif parent not in _preset_names(base, data):
        raise ConfigError(
            f"presets/{family}.toml: [{name}] base = {parent!r} is not a preset of {family}; "
            f"available: {', '.join(_preset_names(base, data))}"
        )
    else:
        start = _resolve_preset(family, data, base, parent, chain + (name,))
    return _merge(start, {k: v for k, v in own.items() if k != "base"})


def _base_table(base: dict[str, Any], name: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A table of ``_base.toml``, merged onto the base table its own ``base`` key names (if any)."""
    own = base.get(name, {})
    parent = own.get("base")
    if parent is None:
        return own
    if parent in chain + (name,) or parent not in base:
        raise ConfigError(f"presets/_base.toml: [{name}] base = {parent!r} is not another table of _base.toml")
    return _merge(_base_table(base, parent, chain + (name,)), {k: v for k, v in own.items() if k != "base"})


def list_presets() -> dict[str, dict[str, Any]]:
    """Resolved presets by family: ``{family: {"env": id, "quick": {...}, "paper": {...}, ...}}``.

    Each preset table is merged with its base (per-algorithm sub-tables such as
    ``"mb"`` still inside; :func:`preset_config` applies the chosen one).
    """
    base, families = _read_presets()
    out = {}
    for family, data in families.items():
        resolved = {k: v for k, v in data.items() if not isinstance(v, dict)}
        for name in _preset_names(base, data):
            resolved[name] = _resolve_preset(family, data, base, name)
        out[family] = resolved
    return out


def describe_presets() -> str:
    """The preset names and the families that have them, for ``--preset`` help texts."""
    base, families = _read_presets()
    owners: dict[str, list[str]] = {}
    for family, data in families.items():
        for name in _preset_names(base, data):
            owners.setdefault(name, []).append(family)
    every = [name for name, fams in owners.items() if len(fams) == len(families)]
    parts = [" | ".join(every) + " (every family)"] if every else []
    parts += [f"{name} ({', '.join(fams)})" for name, fams in owners.items() if name not in every]
    return ", ".join(parts)


def family_of(env_id: str) -> str | None:
    for family, data in _preset_files().items():
        if data.get("env") == env_id:
            return family
    return None


def split_preset(preset: str) -> tuple[Path | None, str]:
    """``FILE.toml[:NAME]`` -> ``(FILE.toml, NAME)`` (``NAME`` defaults to ``quick``); a name -> ``(None, name)``."""
    end = preset.find(".toml")
    if end < 0:
        return None, preset
    end += len(".toml")
    rest = preset[end:]
    if rest and not rest.startswith(":"):
        raise ConfigError(f"--preset {preset!r}: write FILE.toml or FILE.toml:NAME")
    return Path(preset[:end]), rest[1:] or "quick"


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def preset_env(preset: str | None) -> str | None:
    """The ``env`` a preset file names (``None`` for a preset name, or a file without one)."""
    file = split_preset(preset)[0] if preset else None
    return _preset_file(file).get("env") if file else None


def _preset_file(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except OSError as e:
        raise ConfigError(f"--preset {file}: cannot read it ({e.strerror})") from None
    return _read_toml(text, str(file))


def _family_presets(env_id: str) -> tuple[str, dict[str, Any]]:
    """``(name for messages, family table)`` of ``env_id``: ours, a plugin's file, or none (the base protocols)."""
    family = family_of(env_id)
    if family is not None:
        return family, _preset_files()[family]
    from learn2adapt.envs.catalog import find_family  # noqa: PLC0415

    fam = find_family(env_id)
    if fam is None or not fam.presets:
        return env_id, {}
    package, _, name = fam.presets.partition(":")
    try:
        text = resources.files(package).joinpath(name).read_text()
    except (ModuleNotFoundError, OSError) as e:
        raise ConfigError(f"{env_id}: its presets {fam.presets!r} cannot be read ({e})") from None
    return fam.presets, _read_toml(text, fam.presets)


def preset_config(env_id: str, preset: str = "quick", algo: str | None = None) -> RunConfig:
    """The resolved config of ``preset`` for ``env_id`` (and ``algo``, whose table overrides).

    Resolution as in the module docstring: the base table, the family's differences,
    then the per-algorithm sub-table (e.g. ``[paper.mb]``) when that algorithm is chosen.
    ``preset`` is a name, or a preset file of the user's, ``FILE.toml[:NAME]``, in the format
    of a family file. An environment with no family file (any Gymnasium id, a plugin without
    presets) gets the base protocols of ``_base.toml``.
    """
    cfg = RunConfig(env=env_id)
    if algo is not None:
        cfg.algo = algo
    base, _ = _read_presets()
    file, name = split_preset(preset)
    if file is not None:
        label, data = str(file), _preset_file(file)
        if data.get("env", env_id) != env_id:
            raise ConfigError(f"--preset {file} is written for --env {data['env']}, not {env_id}")
    else:
        label, data = _family_presets(env_id)
    names = _preset_names(base, data)
    if name not in names:
        raise ConfigError(f"preset {name!r} not defined for {env_id} ({label}); available: " + ", ".join(names))
    table = _resolve_preset(label, data, base, name)
    algo_tables = {k: table.pop(k) for k in list(table) if k in _ALGO_TABLES}
    update(cfg, table)
    if cfg.algo in algo_tables:
        update(cfg, algo_tables[cfg.algo])
    cfg.env = env_id
    return cfg
