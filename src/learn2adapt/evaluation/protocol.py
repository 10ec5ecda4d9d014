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

The results and the protocol files that hold them are :mod:`learn2adapt.evaluation.results`;
they aggregate over training seeds in :mod:`learn2adapt.reporting.report`.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from learn2adapt.data.segment_sampler import SegmentSampler
from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer, first_non_finite
from learn2adapt.errors import NonFiniteData, NotEnoughSegments
from learn2adapt.evaluation import results
from learn2adapt.evaluation.statistics import adjusted_rand_index, mean_ci95
from learn2adapt.models.reward import LearnedReward
from learn2adapt.moved import moved_names
from learn2adapt.provenance import code_version
from learn2adapt.run.build import child_seed, make_envs
from learn2adapt.run.config import RunConfig
from learn2adapt.run.rollout import Policy, forward_velocities, run_episodes
from learn2adapt.run.state import RunState

#: Names that moved to :mod:`learn2adapt.evaluation.results` (issue 41): importable from here,
#: with a DeprecationWarning, until 0.3.
if not TYPE_CHECKING:  # mypy sees no __getattr__, so it still flags a name imported from the wrong module
    __getattr__ = moved_names(
        __name__,
        dict.fromkeys(
            (
                "EvalResult",
                "TaskResult",
                "Recovery",
                "Recall",
                "save_eval",
                "save_protocol",
                "load_protocol",
                "load_current",
                "add_to_protocol",
                "set_aside_stale",
                "planner_change",
                "planner_eval_path",
            ),
            "learn2adapt.evaluation.results",
        ),
    )


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


def recovery_curve(episodes: Sequence[Episode]) -> results.Recovery | None:
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
    return results.Recovery(
        [round(s / c, 6) for s, c in zip(sums, counts)], counts, float(np.mean(pre)) if pre else float("nan"), n
    )


def _visits(episode: Episode) -> list[tuple[str, int, int, bool]]:
    """``(task key, start, end, revisit)`` of every stretch of one task, the episode's first included."""
    keys = [json.dumps(t, sort_keys=True) for t in episode.tasks]
    starts = [0, *switch_steps(episode)]
    return [(keys[s], s, e, keys[s] in keys[:s]) for s, e in zip(starts, [*starts[1:], len(episode)])]


def recall_measures(
    episodes: Sequence[Episode], models: Sequence[Sequence[tuple[int, int]]] | None = None
) -> results.Recall | None:
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
    out = results.Recall(
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


def _assignment_measures(
    out: results.Recall, episodes: Sequence[Episode], models: Sequence[Sequence[tuple[int, int]]]
) -> None:
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
) -> results.EvalResult:
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
    result = _empty_result(st, spec, seed)
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
                desc = f"eval {spec} task {i + 1}/{len(test_tasks)}"
                episodes, models = _run_task(st, envs, task, i, n, seed, desc, progress)
                _check_finite(episodes, cfg, task, spec)
                all_models += models
                result.tasks.append(_task_result(st, envs[0], task, episodes, rng, measure_model))
                all_episodes += episodes
        finally:
            for env in envs:
                env.close()
    result.recovery = recovery_curve(all_episodes)
    result.recall = recall_measures(all_episodes, all_models or None)
    result.eval_env_steps = sum(len(ep) for ep in all_episodes)
    result.eval_wall_seconds = round(time.time() - t0, 3)
    return result


def _empty_result(st: Evaluable, spec: str, seed: int) -> results.EvalResult:
    """The result :func:`evaluate` fills in: what it evaluates, and with which code."""
    cfg = st.cfg
    return results.EvalResult(
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


def _run_task(
    st: Evaluable, envs: list[gym.Env], task: dict[str, Any], i: int, n: int, seed: int, desc: str, progress: bool
) -> tuple[list[Episode], list[list[tuple[int, int]]]]:
    """The ``n`` episodes of held-out task ``i``, and for a mixture rule, per episode and step,
    ``(MAP model's identity, models held)`` (empty for other rules)."""
    agent = st.controller(envs, child_seed(seed, 10_000 + i))
    guard_count = getattr(getattr(st, "rule", None), "guard_count", None)
    if guard_count is not None:
        guard_count.reset()
    models: dict[int, list[tuple[int, int]]] = {}

    def record(k: int, t: int, reward: float, info: dict, slot: int) -> None:
        if agent.online is not None:  # the mixture's MAP model and size when this step was planned
            state = agent.online
            models.setdefault(k, []).append((int(state.assignment[slot]), int(state.num_models[slot])))

    episodes = run_episodes(
        envs,
        agent,
        n,
        lambda k: (task, child_seed(seed, i, k) % (2**31)),
        desc=desc,
        progress=progress,
        on_step=record,
    )
    return episodes, [models[k] for k in range(len(episodes))] if models else []


def _check_finite(episodes: Sequence[Episode], cfg: RunConfig, task: dict[str, Any], spec: str) -> None:
    """Never a NaN return saved as a result.

    Raises:
        NonFiniteData: an episode holds a non-finite value.
    """
    found = first_non_finite(episodes)
    if found is not None:
        k, bad = found
        raise NonFiniteData(
            f"eval: {cfg.env} returned a non-finite {bad} of episode {k} on held-out task "
            f"{json.dumps(task)} (schedule {spec}); no evaluation was written"
        )


def _task_result(
    st: Evaluable,
    env: gym.Env,
    task: dict[str, Any],
    episodes: Sequence[Episode],
    rng: np.random.Generator,
    measure_model: bool,
) -> results.TaskResult:
    """The returns of one task's episodes, and what else they measure: the forward velocity, the
    guard's reverted share, and (``measure_model``, a model-based run) the model's errors."""
    tr = results.TaskResult(task, [ep.total_reward for ep in episodes])
    velocities = forward_velocities(env, episodes)
    if velocities is not None:
        tr.velocities = velocities
    guard_count = getattr(getattr(st, "rule", None), "guard_count", None)
    if guard_count is not None:
        tr.guard_reverted = guard_count.fraction()  # before prediction_errors adapts again
    if measure_model and isinstance(st, RunState):
        tr.pred_error_before, tr.pred_error_after, open_loop = prediction_errors(st, episodes, rng)
        tr.open_loop_before, tr.open_loop_after = open_loop["before"], open_loop["after"]
        if st.reward_model is not None:
            tr.reward_error = learned_reward_error(st.reward_model, episodes)
    return tr
