"""Held-out evaluation: returns, model error before/after adaptation, recovery after a switch.

The protocol of docs/method.md Sec. 6:

- only the environment's *test* split is used, task by task (``list_tasks("test")``);
- every episode starts from a fresh adaptation history; the task schedule
  (``fixed``, or a mid-episode change such as ``switch:t=100``, applied by the
  environments' schedule wrapper from its spec string) is applied per episode;
- returns: per-task mean and 95% confidence interval over the episodes;
- model quality: the error on the K transitions that follow M past ones, with
  the fitted prior (before) and the model adapted to those M (after), on
  segments cut from the evaluation episodes themselves (held-out-task data);
- recovery: reward per step as a function of steps since the dynamics changed
  (read from the ``info["task"]`` each step reports);
- cost: the run's training environment steps and the evaluation wall-clock.

Results aggregate over training seeds in :mod:`learn2adapt.reporting.report`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from learn2adapt.data.segment_sampler import SegmentSampler
from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer
from learn2adapt.errors import NonFiniteData, NotEnoughSegments
from learn2adapt.evaluation.statistics import adjusted_rand_index, mean_ci95
from learn2adapt.models.reward import LearnedReward
from learn2adapt.provenance import code_version
from learn2adapt.run.build import child_seed, make_envs
from learn2adapt.run.config import RunConfig
from learn2adapt.run.rollout import Policy, forward_velocities, run_episodes
from learn2adapt.run.run_dir import atomic_write_text
from learn2adapt.run.state import RunState


class Evaluable(Protocol):
    """What :func:`evaluate` needs of a run: a model-based or model-free run, the oracle
    (:mod:`learn2adapt.evaluation.oracle`), a diagnosed run
    (:mod:`learn2adapt.evaluation.diagnosis`). A run loaded from disk also has
    ``checkpoint`` and ``iteration``, which the result records."""

    @property
    def cfg(self) -> RunConfig:
        """The run's configuration."""

    @property
    def train_env_steps(self) -> int:
        """Environment steps the run collected in training."""

    def controller(self, envs: Sequence[gym.Env], seed: int) -> Policy:
        """The policy that acts in ``envs`` (one batched call for all of them)."""


#: Segments per test task on which the prediction error is measured.
PRED_SEGMENTS = 256
#: Steps before a switch averaged as the "before the switch" reward level.
PRE_SWITCH_WINDOW = 20
#: Steps after a switch over which first-visit and revisit rewards are averaged.
RECALL_WINDOW = 50
#: Steps at the start of a revisit not counted in the recall rate (the window still holds the last task).
RECALL_SETTLE = 10


@contextlib.contextmanager
def torch_rng_preserved() -> Iterator[None]:
    """Restore torch's global generators (the CPU's, and CUDA's where initialised) when the block ends."""
    cpu = torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


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
    #: Mean reward over the :data:`PRE_SWITCH_WINDOW` steps before the switches.
    pre_switch_reward: float
    switches: int


@dataclass
class Recall:
    """What happens when the dynamics return to a task seen earlier in the episode.

    Rewards are per step over the :data:`RECALL_WINDOW` steps after each switch (or until the
    next one), split by whether the new task was already in force earlier in that episode.
    ``revisit_gain`` pairs them within each episode that has both: its mean reward after the
    revisits minus its mean reward after the first visits that began at a switch (an episode's
    start is no switch), with a 95% CI over those episodes; ``episode_gains`` lists them (NaN:
    no pair), so two rules evaluated on the same episodes can be compared by episode.

    For rules that keep a mixture of task models (MOLe), per episode, then averaged: the mean
    number of models held, ``models_per_task`` (models held at the last step over the distinct
    tasks of the episode), the MAP model per step against the true task (cluster purity, adjusted
    Rand index), and ``recall_rate``: the share of revisit steps, after the first
    :data:`RECALL_SETTLE` of each revisit, planned with the model that was the MAP model for most
    of that task's first visit (pooled over the revisits).
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


# --- schedules ----------------------------------------------------------------------------
def schedule_envs(envs: list[gym.Env], spec: str) -> list[gym.Env]:
    """Wrap each environment in the schedule of ``spec`` (``fixed``: unchanged)."""
    if not spec or spec == "fixed":
        return envs
    from learn2adapt.envs.schedules import wrap_schedule

    return [wrap_schedule(env, spec) for env in envs]  # a malformed spec raises a ConfigError


# --- measurements on the evaluation episodes ----------------------------------------------
def switch_steps(episode: Episode) -> list[int]:
    """Steps at which the task in force differs from the previous step's."""
    keys = [json.dumps(t, sort_keys=True) for t in episode.tasks]
    return [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]


def recovery_curve(episodes: Sequence[Episode]) -> Recovery | None:
    """Reward per step since each task switch, averaged over switches (None: no switch).

    Each switch contributes until the next switch or the end of its episode.
    """
    sums: list[float] = []
    counts: list[int] = []
    pre: list[float] = []
    n = 0
    for ep in episodes:
        switches = switch_steps(ep)
        bounds = switches + [len(ep)]
        for s, end in zip(switches, bounds[1:]):
            n += 1
            pre.extend(ep.reward[max(0, s - PRE_SWITCH_WINDOW) : s].tolist())
            seg = ep.reward[s:end]
            if len(seg) > len(sums):
                sums += [0.0] * (len(seg) - len(sums))
                counts += [0] * (len(seg) - len(counts))
            for d, r in enumerate(seg):
                sums[d] += float(r)
                counts[d] += 1
    if n == 0:
        return None
    return Recovery(
        [round(s / c, 6) for s, c in zip(sums, counts)], counts, float(np.mean(pre)) if pre else float("nan"), n
    )


def _visits(episode: Episode) -> list[tuple[str, int, int, bool]]:
    """``(task key, start, end, revisit)`` of every stretch of one task, the episode's first included."""
    keys = [json.dumps(t, sort_keys=True) for t in episode.tasks]
    starts = [0, *switch_steps(episode)]
    return [(keys[s], s, e, keys[s] in keys[:s]) for s, e in zip(starts, [*starts[1:], len(episode)])]


def recall_measures(
    episodes: Sequence[Episode], models: Sequence[Sequence[tuple[int, int]]] | None = None
) -> Recall | None:
    """First-visit vs revisit reward after switches, and the mixture's task assignment (None: no switch).

    Args:
        episodes: evaluation episodes (``tasks`` holds the task in force at each step).
        models: per episode and step, ``(MAP model's identity, models held)`` of a mixture rule;
            None otherwise.
    """
    first: list[float] = []
    again: list[float] = []
    gains: list[float] = []
    n_first = n_again = 0
    for ep in episodes:
        ep_first: list[float] = []
        ep_again: list[float] = []
        for _, s, end, revisit in _visits(ep)[1:]:
            window = ep.reward[s : min(end, s + RECALL_WINDOW)].tolist()
            (ep_again if revisit else ep_first).extend(window)
            n_again, n_first = n_again + revisit, n_first + (not revisit)
        first += ep_first
        again += ep_again
        gains.append(float(np.mean(ep_again) - np.mean(ep_first)) if ep_first and ep_again else float("nan"))
    if n_first + n_again == 0:
        return None
    paired = [g for g in gains if math.isfinite(g)]
    out = Recall(
        float(np.mean(first)) if first else float("nan"),
        float(np.mean(again)) if again else float("nan"),
        n_first,
        n_again,
        episode_gains=gains,
    )
    if paired:
        out.revisit_gain, out.revisit_gain_ci95 = mean_ci95(paired)
    if models:
        _assignment_measures(out, episodes, models)
    return out


def _assignment_measures(out: Recall, episodes: Sequence[Episode], models: Sequence[Sequence[tuple[int, int]]]) -> None:
    """Fill ``out``'s mixture measures from each step's ``(MAP model, models held)``."""
    purity, ari, held, per_task = [], [], [], []
    recalled = revisit_steps = 0
    for ep, steps in zip(episodes, models):
        truth = [json.dumps(t, sort_keys=True) for t in ep.tasks[: len(steps)]]
        assigned = [m for m, _ in steps]
        held += [h for _, h in steps]
        ari.append(adjusted_rand_index(truth, assigned))
        majority = sum(max(Counter(t for t, a in zip(truth, assigned) if a == c).values()) for c in set(assigned))
        purity.append(majority / len(steps))
        per_task.append(steps[-1][1] / len(set(truth)))
        first_model: dict[str, int] = {}
        for key, s, end, revisit in _visits(ep):
            if end > len(steps):  # the recorded steps end early (a diverged episode)
                break
            if not revisit:
                first_model[key] = Counter(assigned[s:end]).most_common(1)[0][0]
                continue
            counted = assigned[s + RECALL_SETTLE : end]
            recalled += sum(m == first_model[key] for m in counted)
            revisit_steps += len(counted)
    out.mean_models, out.purity, out.ari = float(np.mean(held)), float(np.mean(purity)), float(np.nanmean(ari))
    out.models_per_task = float(np.mean(per_task))
    out.recall_rate = recalled / revisit_steps if revisit_steps else float("nan")


def prediction_errors(
    st: RunState, episodes: Sequence[Episode], rng: np.random.Generator, max_segments: int = PRED_SEGMENTS
) -> tuple[float, float, dict[str, list[float]]]:
    """(before, after) one-step error of ``st.rule`` on M+K segments of ``episodes`` (NaN if none
    fits), and on the same segments the open-loop error 1..K steps ahead (empty if none fits)."""
    past, future = st.cfg.adaptation.past, st.cfg.adaptation.future
    buf = TrajectoryBuffer(st.buffer.obs_dim, st.buffer.act_dim, capacity=sum(len(e) for e in episodes) or 1)
    for ep in episodes:
        buf.add_episode(ep)
    try:
        sampler = SegmentSampler(buf, past + future, st.rule.device)
    except NotEnoughSegments:
        return float("nan"), float("nan"), {"before": [], "after": []}
    starts = sampler.starts
    if starts.size > max_segments:
        starts = np.sort(rng.choice(starts, size=max_segments, replace=False))
    segments = sampler.gather(starts)
    errors = st.rule.segment_errors(segments, past)
    return float(errors["before"]), float(errors["after"]), st.rule.open_loop_errors(segments, past)


def learned_reward_error(model: LearnedReward, episodes: Sequence[Episode]) -> float:
    """Root-mean-square error of ``model``'s reward against the rewards the environment returned."""
    device = model.in_mean.device
    t = lambda name: torch.as_tensor(  # noqa: E731
        np.concatenate([getattr(ep, name) for ep in episodes]), dtype=torch.float32, device=device
    )
    return model.rmse(t("obs"), t("act"), t("next_obs"), t("reward"))


def evaluate(
    st: Evaluable,
    episodes_per_task: int | None = None,
    tasks: list[dict[str, Any]] | None = None,
    seed: int = 0,
    progress: bool = True,
    schedule: str | None = None,
    measure_model: bool = True,
) -> EvalResult:
    """Evaluate the controller of ``st`` on held-out test tasks under one schedule.

    Args:
        st: a loaded run: model-based (config + fitted rule, planned with MPC) or model-free
            (config + policy; no prediction error to measure), the oracle (MPC over the
            simulator, :mod:`learn2adapt.evaluation.oracle`), or a model-based run whose
            controller is diagnosed (:mod:`learn2adapt.evaluation.diagnosis`).
        episodes_per_task: defaults to ``cfg.eval.episodes_per_task``.
        tasks: defaults to the environment's test split (its nominal task with ``cfg.nominal``).
        seed: evaluation seed (episode reset seeds and planner noise); the same
            seed gives every algorithm the same initial states.
        progress: show progress bars.
        schedule: task schedule spec; defaults to ``cfg.eval.schedule``.
        measure_model: also measure the prediction error before/after adaptation.
    """
    cfg = st.cfg
    t0 = time.time()
    n = episodes_per_task or cfg.eval.episodes_per_task
    spec = schedule if schedule is not None else cfg.eval.schedule
    length = cfg.eval.episode_length or cfg.episode_length
    envs = schedule_envs(make_envs(cfg, min(cfg.num_envs, n), episode_length=length), spec)
    test_tasks = tasks if tasks is not None else envs[0].unwrapped.test_tasks(cfg.nominal)
    result = EvalResult(
        cfg.env,
        cfg.algo,
        spec or "fixed",
        seed=seed,
        run_seed=cfg.seed,
        past=cfg.adaptation.past,
        future=cfg.adaptation.future,
        train_env_steps=st.train_env_steps,
        checkpoint=getattr(st, "checkpoint", ""),
        train_iteration=getattr(st, "iteration", -1),
        code=code_version(),
    )
    all_episodes: list[Episode] = []
    all_models: list[list[tuple[int, int]]] = []
    rng = np.random.default_rng(child_seed(seed, 20_000))
    # An ensemble samples its predictions from torch's global generator: seeded per task, so an
    # evaluation gives the same result whatever ran before it in the process (a resumed
    # `compare`, a probe during training), and restored afterwards, so the caller's stream is untouched.
    with torch_rng_preserved():
        try:
            for i, task in enumerate(test_tasks):
                torch.manual_seed(child_seed(seed, 30_000 + i))
                agent = st.controller(envs, child_seed(seed, 10_000 + i))
                guard_count = getattr(getattr(st, "rule", None), "guard_count", None)
                if guard_count is not None:
                    guard_count.reset()
                models: dict[int, list[tuple[int, int]]] = {}

                def record(k: int, t: int, reward: float, info: dict, slot: int, agent=agent, models=models) -> None:
                    if agent.online is not None:  # the mixture's MAP model and size when this step was planned
                        state = agent.online
                        models.setdefault(k, []).append((int(state.assignment[slot]), int(state.num_models[slot])))

                episodes = run_episodes(
                    envs,
                    agent,
                    n,
                    lambda k, task=task, i=i: (task, child_seed(seed, i, k) % (2**31)),
                    desc=f"eval {spec} task {i + 1}/{len(test_tasks)}",
                    progress=progress,
                    on_step=record,
                )
                for k, ep in enumerate(episodes):
                    bad = ep.first_non_finite()
                    if bad is not None:  # never a NaN return saved as a result
                        raise NonFiniteData(
                            f"eval: {cfg.env} returned a non-finite {bad} of episode {k} on held-out task "
                            f"{json.dumps(task)} (schedule {spec}); no evaluation was written"
                        )
                all_models += [models[k] for k in range(len(episodes))] if models else []
                tr = TaskResult(task, [ep.total_reward for ep in episodes])
                velocities = forward_velocities(envs[0], episodes)
                if velocities is not None:
                    tr.velocities = velocities
                if guard_count is not None:
                    tr.guard_reverted = guard_count.fraction()  # before prediction_errors adapts again
                if measure_model and isinstance(st, RunState):
                    tr.pred_error_before, tr.pred_error_after, open_loop = prediction_errors(st, episodes, rng)
                    tr.open_loop_before, tr.open_loop_after = open_loop["before"], open_loop["after"]
                    if st.reward_model is not None:
                        tr.reward_error = learned_reward_error(st.reward_model, episodes)
                result.tasks.append(tr)
                all_episodes += episodes
        finally:
            for env in envs:
                env.close()
    result.recovery = recovery_curve(all_episodes)
    result.recall = recall_measures(all_episodes, all_models or None)
    result.eval_env_steps = sum(len(ep) for ep in all_episodes)
    result.eval_wall_seconds = round(time.time() - t0, 3)
    return result


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


def _reusable(
    result: EvalResult,
    reuse_stale: bool = False,
    test_time: Sequence[str] = (),
    train_env_steps: int | None = None,
    checkpoint: str | None = None,
) -> bool:
    """Written by this code (by any, with ``reuse_stale``) with exactly the test-time changes
    ``test_time`` (none: the run's own settings), of the model trained for ``train_env_steps``
    steps when given (another number: an evaluation of an earlier checkpoint, never reused), and
    of the checkpoint whose digest is ``checkpoint`` where both it and the result record one."""
    return (
        (reuse_stale or result.code == code_version())
        and list(result.test_time) == list(test_time)
        and (train_env_steps is None or result.train_env_steps == train_env_steps)
        and (not checkpoint or not result.checkpoint or result.checkpoint == checkpoint)
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
    checkpoint ``checkpoint``; :func:`_reusable`); none if the file is missing or unreadable."""
    saved = _read_protocol(path) or {}
    return {spec: r for spec, r in saved.items() if _reusable(r, reuse_stale, test_time, train_env_steps, checkpoint)}


def eval_path(run_dir: Path, test_time: Sequence[str] = ()) -> Path:
    """Where ``learn2adapt eval`` writes a run's evaluation: with the run's own settings, its protocol
    file ``eval.json`` (which ``compare`` reuses); with test-time changes ``test_time``, a file of its
    own named after them (``eval-<changes>.json``)."""
    if not test_time:
        return Path(run_dir) / "eval.json"
    return Path(run_dir) / f"eval-{re.sub(r'[^A-Za-z0-9._=+-]', '-', '_'.join(test_time))}.json"


# --- the planner as an evaluation axis (``compare --eval-planners``) ---------------------
def planner_change(planner: str) -> list[str]:
    """The test-time change that plans a trained run with ``planner`` (``eval --set planner.name=...``)."""
    return [f"planner.name={planner}"]


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
    path = Path(path)
    saved = _read_protocol(path)
    if not saved or all(_reusable(r, False, test_time, train_env_steps, checkpoint) for r in saved.values()):
        return None  # missing, unreadable, or all reusable: nothing to keep apart
    codes = {r.code for r in saved.values()}
    tag = "+".join(sorted(c or "unversioned" for c in codes))
    target, n = path.with_name(f"{path.stem}-{tag}.json"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}-{tag}-{n}.json")
    path.rename(target)
    return target
