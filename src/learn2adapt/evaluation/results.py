"""An evaluation's results and the protocol files that hold them.

:class:`EvalResult` is one run evaluated under one task schedule (per held-out task, its
returns and model error: :class:`TaskResult`; after switches, :class:`Recovery` and
:class:`Recall`); :func:`~learn2adapt.evaluation.protocol.evaluate` measures it.

A run's ``eval.json`` holds its results under every schedule (:func:`save_protocol`,
:func:`load_protocol`). Each result records the code that wrote it, the test-time changes it
carries and the checkpoint it evaluated, so what may be reused is decided here
(:func:`load_current`), and a file about to be replaced that holds anything else is set
aside, never lost (:func:`set_aside_stale`). ``compare --eval-planners`` keeps a run's
evaluation with another planner beside it (:func:`planner_eval_path`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learn2adapt.evaluation.statistics import mean_ci95
from learn2adapt.provenance import code_version
from learn2adapt.run.run_dir import atomic_write_text


@dataclass
class TaskResult:
    """Returns (and model error) on one held-out test task."""

    task: dict[str, Any]
    returns: list[float]
    mean: float = 0.0
    ci95: float = 0.0
    #: Prediction error on the K future transitions with the unadapted prior.
    pred_error_before: float = float("nan")
    #: The same, with the model adapted to the M past transitions.
    pred_error_after: float = float("nan")
    #: Open-loop error 1..K steps ahead (the model fed its own predictions under the recorded
    #: actions; normalised state units; :meth:`~learn2adapt.adaptation.base.AdaptationRule.open_loop_errors`)
    #: with the prior and with the adapted model, on the same segments; empty where not measured.
    open_loop_before: list[float] = field(default_factory=list)
    open_loop_after: list[float] = field(default_factory=list)
    #: Locomotion families: each episode's mean forward velocity of the root (m/s), so a return
    #: can be placed (a cheetah that does not move vs one that runs); empty otherwise.
    velocities: list[float] = field(default_factory=list)
    #: With ``adaptation.guard``: the fraction of online steps (environment x member x control step)
    #: it reverted to the fitted model; NaN without the guard.
    guard_reverted: float = float("nan")
    #: Under ``reward=learned``: the root-mean-square error of the learned reward against the
    #: environment's on these episodes' transitions; NaN otherwise.
    reward_error: float = float("nan")

    def __post_init__(self) -> None:
        self.mean, self.ci95 = mean_ci95(self.returns)


@dataclass
class Recovery:
    """Reward per step against steps since a dynamics change, over all switches seen."""

    #: Mean reward at 0, 1, 2, ... steps after a switch (0: the first step under the new task).
    reward: list[float]
    #: How many (episode, switch) pairs reached each offset.
    count: list[int]
    #: Mean reward over the :data:`~learn2adapt.evaluation.protocol.PRE_SWITCH_WINDOW` steps
    #: before the switches.
    pre_switch_reward: float
    switches: int


@dataclass
class Recall:
    """What happens when the dynamics return to a task seen earlier in the episode.

    Rewards are per step over the :data:`~learn2adapt.evaluation.protocol.RECALL_WINDOW` steps
    after each switch (or until the next one), split by whether the new task was already in force
    earlier in that episode.
    ``revisit_gain`` pairs them within each episode that has both: its mean reward after the
    revisits minus its mean reward after the first visits that began at a switch (an episode's
    start is no switch), with a 95% CI over those episodes; ``episode_gains`` lists them (NaN:
    no pair), so two rules evaluated on the same episodes can be compared by episode.

    For rules that keep a mixture of task models (MOLe), per episode, then averaged: the mean
    number of models held, ``models_per_task`` (models held at the last step over the distinct
    tasks of the episode), the MAP model per step against the true task (cluster purity, adjusted
    Rand index), and ``recall_rate``: the share of revisit steps, after the first
    :data:`~learn2adapt.evaluation.protocol.RECALL_SETTLE` of each revisit, planned with the model
    that was the MAP model for most of that task's first visit (pooled over the revisits).
    """

    first_visit_reward: float
    revisit_reward: float
    first_visits: int
    revisits: int
    mean_models: float = float("nan")
    purity: float = float("nan")
    ari: float = float("nan")
    revisit_gain: float = float("nan")
    revisit_gain_ci95: float = float("nan")
    episode_gains: list[float] = field(default_factory=list)
    recall_rate: float = float("nan")
    models_per_task: float = float("nan")


@dataclass
class EvalResult:
    """One run evaluated under one task schedule on every held-out test task."""

    env: str
    algo: str
    schedule: str
    tasks: list[TaskResult] = field(default_factory=list)
    seed: int = 0
    run_seed: int = 0
    #: M and K of the prediction-error measurement.
    past: int = 0
    future: int = 0
    recovery: Recovery | None = None
    recall: Recall | None = None
    #: Environment steps the run collected in training (its sample cost).
    train_env_steps: int = 0
    #: The checkpoint evaluated: its checksum ("": a run in memory, e.g. a probe during training,
    #: or a file written before it was recorded) and its iteration (-1: unknown).
    checkpoint: str = ""
    train_iteration: int = -1
    eval_env_steps: int = 0
    eval_wall_seconds: float = 0.0
    #: The code that evaluated (:func:`~learn2adapt.provenance.code_version`); empty in files
    #: written before it was recorded.
    code: str = ""
    #: Options changed at test time (``eval --online / --set``); empty: the run's own settings.
    test_time: list[str] = field(default_factory=list)

    @property
    def all_returns(self) -> list[float]:
        return [r for t in self.tasks for r in t.returns]

    @property
    def mean(self) -> float:
        return mean_ci95(self.all_returns)[0]

    @property
    def pred_error(self) -> tuple[float, float]:
        """(before, after) prediction error, averaged over test tasks."""
        before = [t.pred_error_before for t in self.tasks if math.isfinite(t.pred_error_before)]
        after = [t.pred_error_after for t in self.tasks if math.isfinite(t.pred_error_after)]
        return (float(np.mean(before)) if before else float("nan"), float(np.mean(after)) if after else float("nan"))

    @property
    def open_loop(self) -> dict[str, list[float]]:
        """Open-loop error by steps ahead (before / after adaptation), averaged over the test tasks that measured it."""
        out = {}
        for name in ("before", "after"):
            curves = [getattr(t, f"open_loop_{name}") for t in self.tasks if getattr(t, f"open_loop_{name}")]
            out[name] = [float(v) for v in np.mean(curves, axis=0)] if curves else []
        return out

    @property
    def reward_error(self) -> float:
        """The learned reward's error (:attr:`TaskResult.reward_error`), averaged over test tasks."""
        errors = [t.reward_error for t in self.tasks if math.isfinite(t.reward_error)]
        return float(np.mean(errors)) if errors else float("nan")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean"], out["ci95"] = mean_ci95(self.all_returns)
        out["pred_error_before"], out["pred_error_after"] = self.pred_error
        out["reward_error"] = self.reward_error
        open_loop = self.open_loop
        out["open_loop_before"], out["open_loop_after"] = open_loop["before"], open_loop["after"]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalResult:
        tasks = [
            TaskResult(
                t["task"],
                t["returns"],
                pred_error_before=t.get("pred_error_before", float("nan")),
                pred_error_after=t.get("pred_error_after", float("nan")),
                open_loop_before=t.get("open_loop_before", []),
                open_loop_after=t.get("open_loop_after", []),
                velocities=t.get("velocities", []),
                guard_reverted=t.get("guard_reverted", float("nan")),
                reward_error=t.get("reward_error", float("nan")),
            )
            for t in data.get("tasks", [])
        ]
        rec, recall = data.get("recovery"), data.get("recall")
        names = {f for f in cls.__dataclass_fields__} - {"tasks", "recovery", "recall"}
        return cls(
            tasks=tasks,
            recovery=Recovery(**rec) if rec else None,
            recall=Recall(**recall) if recall else None,
            **{k: v for k, v in data.items() if k in names},
        )


# --- files ----------------------------------------------------------------------------------
def save_eval(result: EvalResult, path: Path) -> None:
    """Write one result as JSON (``learn2adapt eval``)."""
    _write_json(Path(path), result.to_json())


def _write_json(path: Path, data: Any) -> None:
    """Write atomically, so an interrupted job never leaves a half-written file behind."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


# --- the protocol: several schedules, one file --------------------------------------------
def save_protocol(results: dict[str, EvalResult], path: Path) -> None:
    """``eval.json``: the first schedule's result at top level (as ``learn2adapt eval``
    writes it) and every schedule's under ``"schedules"``."""
    specs = list(results)
    data = results[specs[0]].to_json()
    data["schedules"] = {spec: r.to_json() for spec, r in results.items()}
    _write_json(Path(path), data)


def load_protocol(path: Path) -> dict[str, EvalResult]:
    """Results by schedule from an ``eval.json`` (one entry if written by ``learn2adapt eval``)."""
    data = json.loads(Path(path).read_text())
    if "schedules" in data:
        return {spec: EvalResult.from_json(r) for spec, r in data["schedules"].items()}
    return {data.get("schedule", "fixed"): EvalResult.from_json(data)}


def _read_protocol(path: Path) -> dict[str, EvalResult] | None:
    """:func:`load_protocol`, or None for a missing or unreadable file."""
    try:
        return load_protocol(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class _Reuse:
    """What a saved result must be to be reused as the run's evaluation (:func:`load_current`)."""

    reuse_stale: bool
    test_time: Sequence[str]
    train_env_steps: int | None
    checkpoint: str | None

    def accepts(self, result: EvalResult) -> bool:
        """Written by this code (by any, with ``reuse_stale``) with exactly the test-time changes
        ``test_time`` (none: the run's own settings), of the model trained for ``train_env_steps``
        steps when given (another number: an evaluation of an earlier checkpoint, never reused), and
        of the checkpoint whose digest is ``checkpoint`` where both it and the result record one."""
        return (
            (self.reuse_stale or result.code == code_version())
            and list(result.test_time) == list(self.test_time)
            and (self.train_env_steps is None or result.train_env_steps == self.train_env_steps)
            and (not self.checkpoint or not result.checkpoint or result.checkpoint == self.checkpoint)
        )


def load_current(
    path: Path,
    reuse_stale: bool = False,
    test_time: Sequence[str] = (),
    train_env_steps: int | None = None,
    checkpoint: str | None = None,
) -> dict[str, EvalResult]:
    """The results of a protocol file that this code may reuse as the run's evaluation (with the
    test-time changes ``test_time``, of the model trained for ``train_env_steps`` steps, of the
    checkpoint ``checkpoint``; :meth:`_Reuse.accepts`); none if the file is missing or unreadable."""
    wanted = _Reuse(reuse_stale, test_time, train_env_steps, checkpoint)
    return {spec: r for spec, r in (_read_protocol(path) or {}).items() if wanted.accepts(r)}


# --- the planner as an evaluation axis (``compare --eval-planners``) ---------------------
def planner_change(planner: str) -> list[str]:
    """The test-time change that plans a trained run with ``planner`` (``eval --set planner.name=...``)."""
    return [f"planner.name={planner}"]


def eval_path(run_dir: Path, test_time: Sequence[str] = ()) -> Path:
    """Where ``learn2adapt eval`` writes a run's evaluation: with the run's own settings, its protocol
    file ``eval.json`` (which ``compare`` reuses); with test-time changes ``test_time``, a file of its
    own named after them (``eval-<changes>.json``)."""
    if not test_time:
        return Path(run_dir) / "eval.json"
    return Path(run_dir) / f"eval-{re.sub(r'[^A-Za-z0-9._=+-]', '-', '_'.join(test_time))}.json"


def planner_eval_path(run_dir: Path, planner: str) -> Path:
    """Where ``compare --eval-planners`` keeps a run's evaluation with a planner other than its own
    (the run's own planner's is ``eval.json``)."""
    return Path(run_dir) / f"eval-planner-{planner}.json"


def add_to_protocol(result: EvalResult, path: Path) -> None:
    """Merge one schedule's result into the protocol file ``path`` (``eval.json``): what this code
    wrote there for other schedules is kept; a file holding results of other code is set aside
    first (:func:`set_aside_stale`)."""
    kept = load_current(path, False, (), result.train_env_steps, result.checkpoint or None)
    set_aside_stale(path, (), result.train_env_steps, result.checkpoint or None)
    kept[result.schedule] = result
    save_protocol(kept, path)


def set_aside_stale(
    path: Path, test_time: Sequence[str] = (), train_env_steps: int | None = None, checkpoint: str | None = None
) -> Path | None:
    """Before ``path`` is replaced: rename it to ``<stem>-<code>.json`` if it holds a result that
    :func:`load_current` would not reuse (of other code, ``unversioned`` when not recorded, or
    with other test-time changes than ``test_time``), so no earlier evaluation is lost.

    Returns:
        The new path, or None when nothing was moved.
    """
    path, wanted = Path(path), _Reuse(False, test_time, train_env_steps, checkpoint)
    saved = _read_protocol(path)
    if not saved or all(wanted.accepts(r) for r in saved.values()):
        return None  # missing, unreadable, or all reusable: nothing to keep apart
    codes = {r.code for r in saved.values()}
    tag = "+".join(sorted(c or "unversioned" for c in codes))
    target, n = path.with_name(f"{path.stem}-{tag}.json"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}-{tag}-{n}.json")
    path.rename(target)
    return target
