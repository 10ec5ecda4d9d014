"""The configuration digest a checkpoint keeps, and what a resume may change.

A checkpoint stores the SHA-256 of its run's configuration, less the options a resume may
change (:data:`RESUMABLE_OPTIONS`), so an edited ``config.json`` is refused rather than
silently trained on. The digest stays comparable across versions: a checkpoint written by
learn2adapt 0.1 (which counted the device) or before options were added still matches.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from learn2adapt.errors import ConfigError
from learn2adapt.run.checkpoint import save_checkpoint
from learn2adapt.run.config import RunConfig, check_device
from learn2adapt.run.options import apply_overrides, load_config, to_dict

#: Options ``train --resume RUN --set KEY=VALUE`` may change mid-run (everything else is refused):
#: how long it runs and where (the device, to move a run to another machine), not what it computes.
#: The configuration digest of a checkpoint leaves them out (:func:`config_digest`).
RESUMABLE_OPTIONS = ("iterations", "baseline.steps", "device")
#: The options the digests of learn2adapt 0.1 left out (before a resume could change ``device``).
LEGACY_LEFT_OUT = ("iterations", "baseline.steps")


def config_digest(cfg: RunConfig | dict[str, Any], left_out: Sequence[str] = RESUMABLE_OPTIONS) -> str:
    """SHA-256 of the configuration, except the options a resume may change (:data:`RESUMABLE_OPTIONS`).

    ``cfg`` may also be a saved ``config.json`` as read (a dict); ``left_out``: the options left
    out (:data:`LEGACY_LEFT_OUT` for the digest of an earlier version's checkpoint).
    """
    values = to_dict(cfg) if isinstance(cfg, RunConfig) else copy.deepcopy(cfg)
    for key in left_out:
        *path, last = key.split(".")
        node = values
        for part in path:
            node = node.get(part, {})
        node.pop(last, None)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def check_config_digest(state: dict[str, Any], cfg: RunConfig, cfg_path: Path) -> bool:
    """Whether a checkpoint belongs to this configuration.

    Options added to learn2adapt after the run's ``config.json`` was written (loaded with their
    defaults) are no edit, whichever version wrote the checkpoint: it knew some of them, so the
    digest is compared with the configuration without each subset of those options (a handful:
    ``2^k`` digests for ``k`` added options), the saved file as written included. Each is also
    digested as earlier versions did (:data:`LEGACY_LEFT_OUT`: the device counted, as saved).
    """
    digest = state.get("config_digest")
    if digest is None:
        return True
    saved = json.loads(cfg_path.read_text())
    full = to_dict(cfg)
    full["device"] = saved.get("device", full["device"])  # where it ran (cfg may run elsewhere)
    return any(
        digest in (config_digest(values), config_digest(values, LEGACY_LEFT_OUT))
        for values in itertools.chain([saved], _without_added_options(full, saved))
    )


def _without_added_options(full: dict[str, Any], saved: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``full`` without each subset of the options ``saved`` lacks (the empty subset first)."""
    added = _added_options(full, saved)
    for k in range(min(len(added), MAX_ADDED_OPTIONS) + 1):
        for subset in itertools.combinations(added, k):
            values = copy.deepcopy(full)
            for *path, last in subset:
                node = values
                for part in path:
                    node = node[part]
                node.pop(last)
            yield values


def restamp_config_digest(path: Path, state: dict[str, Any], cfg: RunConfig) -> None:
    """Give the checkpoint ``state`` (as read from ``path``) the digest of ``cfg``, if it holds another.

    Called before ``config.json`` is rewritten for ``cfg`` on a resume: a digest that only
    :func:`check_config_digest`'s fallbacks match (an earlier version's, or one without options
    added since) would not match the rewritten file, and a run stopped before its next
    checkpoint could not be resumed.
    """
    if state.get("config_digest") not in (None, config_digest(cfg)):
        save_checkpoint(path, {**state, "config_digest": config_digest(cfg)})


#: Options added since a run was written that :func:`check_config_digest` tries leaving out.
MAX_ADDED_OPTIONS = 8


def _added_options(full: dict[str, Any], saved: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of ``full``'s keys missing from ``saved`` (a whole missing table is one path)."""
    out = []
    for key, value in full.items():
        if key not in saved:
            out.append((*prefix, key))
        elif isinstance(value, dict) and isinstance(saved[key], dict):
            out += _added_options(value, saved[key], (*prefix, key))
    return out


def resumed_config(run_dir: Path, changes: dict[str, str] | None = None) -> RunConfig:
    """The saved configuration of ``run_dir`` with the ``--set`` changes a resume allows (:data:`RESUMABLE_OPTIONS`).

    Raises:
        ConfigError: another option is changed, or the run's device is one this machine cannot
            use and ``changes`` gives none (the message names ``--set device=...``).
    """
    changes = changes or {}
    refused = sorted(set(changes) - set(RESUMABLE_OPTIONS))
    if refused:
        raise ConfigError(
            f"{refused[0]} cannot change in the middle of a run; only {', '.join(RESUMABLE_OPTIONS)} can be set "
            "with --resume (e.g. --set iterations=80 to extend it); start a new run with --run-dir for other options"
        )
    if "device" in changes:
        check_device(changes["device"])  # refused as the --set value it is, not as config.json's
    cfg = load_config(Path(run_dir) / "config.json", device=changes.get("device"))
    return apply_overrides(cfg, [f"{k}={v}" for k, v in changes.items()]).validate()
