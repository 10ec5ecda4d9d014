"""The outer loop of model-based RL with data aggregation (Nagabandi et al., 2019, Alg. 1).

Iteration 0 collects random-action episodes under training tasks; every later
iteration collects with MPC and online adaptation active. After each
collection the rule is (meta-)trained on all data so far, and a checkpoint of
everything (model, optimiser, normaliser, data, RNG states) is written, so a
killed run resumes from its last finished iteration with no collected data lost.

The parts of a run are built by :mod:`learn2adapt.run.build`; its state and checkpoint are
:mod:`learn2adapt.run.state`'s.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from learn2adapt.data.recorded import file_digest, load_recording
from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer
from learn2adapt.errors import (
    ConfigError,
    NonFiniteData,
    NonFiniteLossError,
    NotEnoughSegments,
    TrainingDiverged,
    UserError,
)
from learn2adapt.moved import moved_names
from learn2adapt.run import build, state  # not their moved names: see _MOVED
from learn2adapt.run.build import build_reward_model, child_seed, make_envs, run_env
from learn2adapt.run.checkpoint import CHECKPOINT_NAME
from learn2adapt.run.config import RunConfig
from learn2adapt.run.digest import restamp_config_digest, resumed_config
from learn2adapt.run.eta import format_duration, remaining_seconds
from learn2adapt.run.memory import check_run_memory
from learn2adapt.run.metrics_log import MetricsLog
from learn2adapt.run.options import save_config
from learn2adapt.run.rollout import Policy, RandomPolicy, forward_velocities, run_episodes
from learn2adapt.run.run_dir import (
    RunLock,
    atomic_write_text,
    check_writable,
    move_to_discarded,
    no_config_error,
    set_aside_evaluations,
)


def _what_is_kept(iteration: int, run_dir: Path) -> str:
    if iteration < 0:
        return f"no iteration finished, so {run_dir} holds no checkpoint"
    return f"the last good checkpoint (iteration {iteration}) is kept in {run_dir}"


#: What a run that lost its checkpoint leaves, set aside when it starts again in place (with ``eval*.json``).
_STALE = ("metrics.csv", "DONE", "tb", "steps")


def check_config(cfg: RunConfig) -> None:
    """Everything that can be checked before a run directory is touched (raises :class:`ConfigError`)."""
    cfg.validate()
    env = run_env(cfg)
    try:  # sizes first (nothing allocated yet), then the parts check their own options
        check_run_memory(cfg, env.observation_space.shape[0], env.action_space.shape[0])
        rule = build.build_rule(cfg, env)
        build.build_planner(cfg, env, cfg.num_envs, cfg.seed)
        if cfg.offline:
            load_recording(Path(cfg.offline), rule.obs_dim, rule.act_dim)
    finally:
        env.close()


def train(
    cfg: RunConfig | None,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    changes: dict[str, str] | None = None,
    on_iteration: Callable[[state.RunState], dict[str, float]] | None = None,
) -> state.RunState:
    """Run (or resume) the outer loop; returns the final state.

    One process at a time writes to a run directory (:class:`RunLock`). A directory whose run
    never finished an iteration (no checkpoint) is no dead end: ``train`` over it starts it
    again in place, and ``resume`` starts it again from its saved config.

    Args:
        cfg: the run's configuration (ignored when resuming: the saved one is used).
        run_dir: where config, metrics, TensorBoard logs and the checkpoint go.
        resume: continue the run in ``run_dir`` from its last checkpoint.
        progress: show progress bars and per-iteration summaries.
        changes: with ``resume``, options to change (only :data:`RESUMABLE_OPTIONS`), e.g.
            ``{"iterations": "80"}`` to extend a run, ``{"device": "cpu"}`` to continue it on a
            machine without the GPU it ran on.
        on_iteration: called after each iteration's fit; the figures it returns (e.g. a held-out
            return, for sample-efficiency curves) join that iteration's ``metrics.csv`` row. The
            training's random streams are restored after it, so it changes no training number.

    Raises:
        ConfigError: a bad option (before anything is written).
        RunDirBusy: another process writes to ``run_dir``.
        CheckpointError: the checkpoint is corrupt or does not match the config.
        TrainingDiverged: a fit produced NaN/inf (the last good checkpoint is kept).
        NonFiniteData: the environment returned NaN/inf (nothing of that iteration is stored).
        UserError: the directory is not writable, or the disk is full (what was written is kept).
    """

    run_dir = Path(run_dir)
    if not resume:
        if cfg is None:
            raise ValueError("train needs a config unless resume=True")
        check_config(cfg)
    elif not (run_dir / "config.json").exists():
        raise no_config_error(run_dir, "resume")
    with RunLock(run_dir):
        check_writable(run_dir)
        cfg, has_checkpoint = _config_to_run(cfg, run_dir, resume, changes, progress)
        start = _continue_from_checkpoint(cfg, run_dir, changes) if has_checkpoint else _start_afresh(cfg, run_dir)
        return _iterate(cfg, start, run_dir, progress, on_iteration)


@dataclass
class _Start:
    """Where :func:`train`'s iterations start: the state, its random stream and what was spent so far."""

    st: state.RunState
    rng: np.random.Generator
    env_steps: int
    wall_before: float
    #: The checkpoint's metrics rows (None: a checkpoint from before they were kept).
    history: list[dict[str, Any]] | None


def _config_to_run(
    cfg: RunConfig | None, run_dir: Path, resume: bool, changes: dict[str, str] | None, progress: bool
) -> tuple[RunConfig, bool]:
    """The configuration :func:`train` runs (a resume's: the saved one, changed), and whether a checkpoint exists."""
    if resume:
        cfg = resumed_config(run_dir, changes)
        has_checkpoint = (run_dir / CHECKPOINT_NAME).exists()
        if not has_checkpoint and progress:
            print(f"{run_dir} holds no checkpoint: starting it again from its config")
        return cfg, has_checkpoint
    assert cfg is not None
    if (run_dir / CHECKPOINT_NAME).exists():
        raise UserError(
            f"{run_dir} already holds a run: continue it with `learn2adapt train --resume {run_dir}` "
            "or choose another --run-dir"
        )
    return cfg, False


def _continue_from_checkpoint(cfg: RunConfig, run_dir: Path, changes: dict[str, str] | None) -> _Start:
    """A resume: the checkpoint's state and random streams; ``changes`` are written to ``config.json``."""
    st, ckpt = state.load_run_and_checkpoint(run_dir, cfg)
    if st.iteration > cfg.iterations:
        raise ConfigError(f"iterations={cfg.iterations}: the run already finished iteration {st.iteration}")
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
    torch.set_rng_state(ckpt["torch_rng"])
    env_steps, wall_before = int(ckpt["env_steps"]), float(ckpt["wall_time"])
    history = json.loads(ckpt["metrics_json"]) if "metrics_json" in ckpt else None
    if changes:
        if (run_dir / "DONE").exists() and cfg.iterations > st.iteration:
            set_aside_evaluations(run_dir)
        (run_dir / "DONE").unlink(missing_ok=True)
        restamp_config_digest(run_dir / CHECKPOINT_NAME, ckpt, cfg)
        save_config(cfg, run_dir / "config.json")
    return _Start(st, rng, env_steps, wall_before, history)


def _start_afresh(cfg: RunConfig, run_dir: Path) -> _Start:
    """A new run, or one started again in place: whatever a lost run left (results, logs) is kept aside,
    never deleted; the random streams are seeded and ``config.json`` is written."""
    kept = move_to_discarded(run_dir, [*(run_dir / name for name in _STALE), *sorted(run_dir.glob("eval*.json"))])
    if kept is not None:
        print(f"{run_dir}: the files of the run before this restart were moved to {kept}", flush=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sizes_env = run_env(cfg)
    rule = build.build_rule(cfg, sizes_env)
    sizes_env.close()
    reward_model = build_reward_model(cfg, rule.obs_dim, rule.act_dim)
    st = state.RunState(cfg, rule, TrajectoryBuffer(rule.obs_dim, rule.act_dim), -1, reward_model)
    save_config(cfg, run_dir / "config.json")
    return _Start(st, rng, 0, 0.0, [])


def _offline_episodes(path: Path, st: state.RunState) -> tuple[list[Episode], dict[str, Any]]:
    """The episodes of a recording (checked against the model's sizes) and what the checkpoint keeps of it."""
    episodes = load_recording(path, st.rule.obs_dim, st.rule.act_dim).episodes()
    return episodes, {"path": str(path), "sha256": file_digest(path), "episodes": len(episodes)}


def _iterate(
    cfg: RunConfig,
    start: _Start,
    run_dir: Path,
    progress: bool,
    on_iteration: Callable[[state.RunState], dict[str, float]] | None = None,
) -> state.RunState:
    """The iterations of :func:`train` from ``start.st.iteration + 1`` on (the run directory is locked),
    then the ``DONE`` file."""
    iterations = _Iterations(cfg, start, run_dir, progress, on_iteration)
    try:
        for it in range(start.st.iteration + 1, cfg.iterations + 1):
            iterations.run(it)
        iterations.write_done()
    finally:
        iterations.close()
    return start.st


class _Iterations:
    """The iterations of one :func:`train` call: each collects, stores, fits, logs and checkpoints."""

    def __init__(
        self,
        cfg: RunConfig,
        start: _Start,
        run_dir: Path,
        progress: bool,
        on_iteration: Callable[[state.RunState], dict[str, float]] | None,
    ) -> None:
        self.cfg, self.st, self.rng, self.run_dir = cfg, start.st, start.rng, run_dir
        self.progress, self.on_iteration = progress, on_iteration
        self.env_steps = start.env_steps
        self.envs = make_envs(cfg, cfg.num_envs)
        self.log = MetricsLog(run_dir, history=start.history)
        self.t_start = time.time() - start.wall_before

    def run(self, it: int) -> None:
        """Iteration ``it``: collect (iteration 0: random actions or the offline data), fit, log, checkpoint."""
        t_iter = time.time()
        self.st.checkpoint = ""  # from here the weights in memory are no checkpoint's (a probe records none)
        episodes, clock = self._collect(it)
        self._store(it, episodes)
        t_collect = time.time() - t_iter
        fit_metrics = self._fit(it)
        self.st.iteration = it
        row = self._metrics_row(it, episodes, clock, fit_metrics, t_iter, t_collect)
        if self.on_iteration is not None:
            torch_state = torch.get_rng_state()
            row.update(self.on_iteration(self.st))
            torch.set_rng_state(torch_state)
        self.log.log(row, self.env_steps)
        state.save_run_checkpoint(
            self.run_dir, self.st, self.rng, self.env_steps, time.time() - self.t_start, self.log.rows
        )
        if self.progress:
            self._print_summary(it, row, fit_metrics)

    def _policy(self, it: int) -> tuple[Policy, int]:
        """The collecting policy of iteration ``it`` and its number of episodes."""
        cfg = self.cfg
        if it == 0:
            space = self.envs[0].action_space
            assert isinstance(space, gym.spaces.Box)
            return RandomPolicy(space, cfg.num_envs, self.rng), cfg.random_episodes
        agent = build.mpc_agent(
            cfg, self.st.rule, self.envs[0], cfg.num_envs, child_seed(cfg.seed, it), self.st.reward_model
        )
        return agent, cfg.episodes_per_iteration

    def _collect(self, it: int) -> tuple[list[Episode], dict[str, float]]:
        """The episodes of iteration ``it`` under drawn training tasks, and the time spent in policy and environment."""
        policy, n_episodes = self._policy(it)
        clock: dict[str, float] = {"policy_seconds": 0.0, "env_seconds": 0.0}
        if it == 0 and self.cfg.offline:  # recorded transitions instead of random actions: no environment steps
            episodes, self.st.offline = _offline_episodes(Path(self.cfg.offline), self.st)
            return episodes, clock
        base = self.envs[0].unwrapped
        episode_seeds = self.rng.integers(0, 2**31 - 1, size=n_episodes)
        tasks = [base.training_task(self.rng, self.cfg.nominal) for _ in range(n_episodes)]
        episodes = run_episodes(
            self.envs,
            policy,
            n_episodes,
            lambda k: (tasks[k], int(episode_seeds[k])),
            desc=f"iter {it} collect",
            progress=self.progress,
            timing=clock,
        )
        return episodes, clock

    def _store(self, it: int, episodes: list[Episode]) -> None:
        """Add the episodes to the buffer, all or (one holds NaN/inf) none."""
        for k, ep in enumerate(episodes):
            bad = ep.first_non_finite()
            if bad is not None:
                raise NonFiniteData(
                    f"iteration {it}: {self.cfg.env} returned a non-finite {bad} of episode {k} "
                    f"(task {json.dumps(ep.tasks[0])}); nothing of this iteration was stored; "
                    f"{_what_is_kept(self.st.iteration, self.run_dir)}"
                )
        for ep in episodes:
            self.st.buffer.add_episode(ep)
        self.env_steps += sum(len(ep) for ep in episodes)

    def _fit(self, it: int) -> dict[str, Any]:
        """(Meta-)train the rule, and the learned reward if any, on all data so far; their metrics."""
        st, kept = self.st, _what_is_kept(self.st.iteration, self.run_dir)
        try:
            fit_metrics = st.rule.fit(st.buffer, self.rng, progress=self.progress)
            if st.reward_model is not None:
                fit_metrics.update(st.reward_model.fit(st.buffer, self.cfg.fit, self.rng, progress=self.progress))
        except NonFiniteLossError as e:
            raise TrainingDiverged(  # the data were checked finite at collection: the optimiser diverged
                f"iteration {it}: {e}; {kept}; start again with a lower fit.lr or fit.grad_clip"
            ) from None
        except NotEnoughSegments as e:
            raise ConfigError(f"iteration {it}: {e}; {kept}") from None
        return fit_metrics

    def _metrics_row(
        self,
        it: int,
        episodes: list[Episode],
        clock: dict[str, float],
        fit_metrics: dict[str, Any],
        t_iter: float,
        t_collect: float,
    ) -> dict[str, Any]:
        """Iteration ``it``'s row of ``metrics.csv``: returns, steps, the time of each part, the fit's metrics."""
        returns = [ep.total_reward for ep in episodes]
        velocities = forward_velocities(self.envs[0], episodes)
        return {
            "iteration": it,
            "env_steps": self.env_steps,
            "episodes": self.st.buffer.num_episodes,
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
            **({} if velocities is None else {"velocity_mean": float(np.mean(velocities))}),
            "collect_seconds": round(t_collect, 3),
            "collect_policy_seconds": round(clock["policy_seconds"], 3),
            "collect_env_seconds": round(clock["env_seconds"], 3),
            "fit_seconds": round(time.time() - t_iter - t_collect, 3),
            "wall_seconds": round(time.time() - self.t_start, 3),
            **{
                k: (float(v) if isinstance(v, (int, float)) and math.isfinite(v) else v) for k, v in fit_metrics.items()
            },
        }

    def _print_summary(self, it: int, row: dict[str, Any], fit_metrics: dict[str, Any]) -> None:
        eta = remaining_seconds(self.log.rows, self.cfg.iterations)
        print(
            f"[{self.cfg.algo}] iter {it}/{self.cfg.iterations}  steps {self.env_steps}  "
            f"return {row['return_mean']:.1f}  "
            f"val loss {fit_metrics.get('fit/val_loss', float('nan')):.4g}  "
            f"({row['collect_seconds']:.0f}s collect, {row['fit_seconds']:.0f}s fit, "
            f"{fit_metrics.get('fit/epochs', 0):.0f} epochs)  elapsed {format_duration(row['wall_seconds'])}"
            + ("" if eta is None else f", ETA {format_duration(eta)}"),
            flush=True,
        )

    def write_done(self) -> None:
        """The ``DONE`` file, with the final checkpoint's digest: an evaluation is reused only for the model it evaluated."""
        done = {"iteration": self.st.iteration, "env_steps": self.env_steps, "checkpoint": self.st.checkpoint}
        atomic_write_text(self.run_dir / "DONE", json.dumps(done) + "\n")

    def close(self) -> None:
        self.log.close()
        for env in self.envs:
            env.close()


#: Names that moved out of this module in 0.2, by new module: importable from here, with a warning, until 0.3.
#: This module uses them as ``build.build_rule``, ``state.RunState``, ..., so that none is an attribute
#: here and an old ``from learn2adapt.run.loop import build_rule`` reaches ``__getattr__``.
_MOVED = {
    **{name: "learn2adapt.run.build" for name in ("build_planner", "build_rule", "mpc_agent")},
    **{name: "learn2adapt.run.state" for name in ("RunState", "load_run")},
}

if not TYPE_CHECKING:  # mypy sees no __getattr__, so it still flags a name imported from the wrong module
    __getattr__ = moved_names(__name__, _MOVED)
