"""A comparison's jobs: one (entry, seed) each, and what a run directory already holds.

Each (algorithm, preset, seed) of ``learn2adapt compare`` is an independent :class:`Job`
(picklable, so a :class:`~learn2adapt.experiments.runner.Runner` may send it to a worker
process), resolved from the comparison's options by :func:`resolve_configs`. A job's run
directory may hold a run already: :func:`check_run_dir` refuses one of another configuration
and extends a shorter one of the same, and :func:`finished_model` reads which model a finished
run ended with (the model an evaluation must be of to be reused). Running jobs is
:mod:`~learn2adapt.experiments.execution`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learn2adapt.reporting.variants import Entry
from learn2adapt.run.config import ConfigError, RunConfig
from learn2adapt.run.options import apply_overrides, check_read, load_config, to_dict
from learn2adapt.run.presets import preset_config


@dataclass
class Job:
    """One training run plus its evaluation (picklable: sent to worker processes)."""

    config: dict[str, Any]
    run_dir: str
    schedules: list[str]
    eval_episodes: int | None = None
    progress: bool = True
    #: With ``--storage copy``: copy the checkpoint (with the replay data) back too.
    keep_checkpoint: bool = True
    #: Measure the held-out return after every iteration / checkpoint (sample-efficiency curves).
    sample_efficiency: bool = False
    #: The compared entry (``grbal+pe``; :mod:`~learn2adapt.reporting.variants`); default: the algorithm.
    entry: str = ""
    #: Keep an evaluation written by other code (default: evaluate the run again; the old file
    #: is kept as ``eval-<code>.json``).
    reuse_stale: bool = False
    #: Planners every model-based run is also evaluated with (``--eval-planners``), without retraining;
    #: each into ``eval-planner-<name>.json`` (the run's own planner's evaluation is ``eval.json``).
    eval_planners: list[str] = dataclasses.field(default_factory=list)
    #: Environment-step counts at which the run is evaluated while it trains (``--at-steps``), into
    #: ``RUN/steps/<count>/`` (:mod:`~learn2adapt.reporting.budgets`).
    at_steps: list[int] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry or self.config["algo"]


@dataclass
class JobResult:
    algo: str
    seed: int
    run_dir: str
    trained: bool
    evaluated: bool
    seconds: float


def resolve_configs(
    env: str, preset: str, entries: Sequence[Entry], seeds: Sequence[int], overrides: Sequence[str]
) -> list[RunConfig]:
    """One validated config per (entry, seed), entry-major, so bad options fail before anything runs.

    An entry's variant options apply after ``overrides`` (the comparison's ``--set``).
    """
    check_read(overrides, dict.fromkeys(entry.algo for entry in entries))
    configs = []
    for entry in entries:
        check_read(entry.overrides, [entry.algo])
        for seed in seeds:
            cfg = preset_config(env, preset, entry.algo)
            apply_overrides(cfg, [*overrides, *entry.overrides])
            cfg.algo, cfg.seed = entry.algo, seed
            configs.append(cfg.validate())
    return configs


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


#: Options in which a run directory may hold a shorter run than the job asks for: the comparison
#: then extends it (``train --resume --set iterations=N``), keeping everything it trained.
EXTENSIBLE = ("iterations", "baseline.steps")


def check_run_dir(job: Job) -> dict[str, str]:
    """Refuse to reuse a run directory that holds a run of another configuration; return the
    changes that extend a shorter run of the same configuration (``{}``: none needed).

    The device is no part of it: a comparison continued on another machine (a GPU one's on a
    laptop) continues its runs there (:func:`~learn2adapt.experiments.execution.run_job`). A run
    that differs only by fewer ``iterations`` or ``baseline.steps`` (:data:`EXTENSIBLE`) is
    extended, not refused.

    Raises:
        ConfigError: naming the first differing options.
    """
    path = Path(job.run_dir) / "config.json"
    if not path.exists():
        return {}
    saved = to_dict(load_config(path, device=job.config["device"]))
    diff = _differences(saved, job.config)
    longer = {}
    for key in EXTENSIBLE:
        section, _, name = key.rpartition(".")
        old, new = (c[section][name] if section else c[name] for c in (saved, job.config))
        if new > old:
            longer[key] = str(new)
    if [d for d in diff if d.split(":")[0] not in longer]:
        raise ConfigError(
            f"{job.run_dir} holds a run with another configuration ({'; '.join(diff[:3])}); "
            "use another --out or delete that run directory"
        )
    return longer


def finished_model(run_dir: Path) -> tuple[int | None, str | None]:
    """``(environment steps, checkpoint digest)`` of a finished run's final model, from its
    ``DONE`` (None where unfinished or not recorded: a ``DONE`` written before the digest was).
    An evaluation recorded for other steps or another checkpoint is not reused."""
    try:
        done = json.loads((Path(run_dir) / "DONE").read_text())
        digest = done.get("checkpoint")
        return int(done["env_steps"]), (str(digest) if digest else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None
