"""The outer loop of model-based RL with data aggregation (Nagabandi et al., 2019, Alg. 1).

Iteration 0 collects random-action episodes under training tasks; every later
iteration collects with MPC and online adaptation active. After each
collection the rule is (meta-)trained on all data so far, and a checkpoint of
everything (model, optimiser, normaliser, data, RNG states) is written, so a
killed run resumes from its last finished iteration with no collected data lost.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from learn2adapt.adaptation import REGISTRY, make_rule, same_prior
from learn2adapt.adaptation.base import AdaptationRule
from learn2adapt.data.recorded import file_digest, load_recording
from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer
from learn2adapt.envs import make_env
from learn2adapt.envs.gym_task_env import LEARNED
from learn2adapt.errors import (
    CheckpointError,
    ConfigError,
    NonFiniteData,
    NonFiniteLossError,
    NotEnoughSegments,
    TrainingDiverged,
    UserError,
)
from learn2adapt.models.reward import LearnedReward
from learn2adapt.planning import make_planner
from learn2adapt.planning.base import Planner
from learn2adapt.run.agent import MPCAgent
from learn2adapt.run.checkpoint import (
    CHECKPOINT_NAME,
    arrays_to_tensors,
    load_checkpoint,
    save_checkpoint,
    tensors_to_arrays,
)
from learn2adapt.run.config import RunConfig, check_device
from learn2adapt.run.eta import format_duration, remaining_seconds
from learn2adapt.run.memory import check_run_memory
from learn2adapt.run.metrics_log import MetricsLog
from learn2adapt.run.options import apply_overrides, load_config, save_config, to_dict
from learn2adapt.run.rollout import Policy, RandomPolicy, forward_velocities, run_episodes
from learn2adapt.run.run_dir import (
    RunLock,
    atomic_write_text,
    check_writable,
    move_to_discarded,
    no_config_error,
    set_aside_evaluations,
)

CHECKPOINT_FORMAT = 1


@dataclass
class RunState:
    """What a training run has produced so far."""

    cfg: RunConfig
    rule: AdaptationRule
    buffer: TrajectoryBuffer
    iteration: int  # last finished iteration (-1: none)
    #: The learned reward (and termination) the planner scores with under ``reward=learned``.
    reward_model: LearnedReward | None = None
    #: Under ``offline=FILE``: the file, its SHA-256 and its episode count (iteration 0's data).
    offline: dict[str, Any] | None = None
    #: The checksum of the checkpoint this state was loaded from ("": built in memory, e.g. while training).
    checkpoint: str = ""

    @property
    def train_env_steps(self) -> int:
        """Environment steps the run collected in training (its sample cost)."""
        return len(self.buffer)

    def controller(self, envs: Sequence[gym.Env], seed: int) -> MPCAgent:
        """The controller evaluation runs for ``envs``: the rule's adapted model + the configured planner."""
        agent = mpc_agent(self.cfg, self.rule, envs[0], len(envs), seed, self.reward_model)
        if hasattr(agent.online, "task_source"):  # an evaluation-only rule told the true task (mole-oracle)
            agent.online.task_source = lambda: [json.dumps(env.unwrapped.task, sort_keys=True) for env in envs]
        return agent


def run_env(cfg: RunConfig, **kwargs: Any) -> gym.Env:
    """The run's environment: ``cfg.env`` with its task space and reward options (``kwargs``: to ``make_env``)."""
    return make_env(cfg.env, **cfg.env_options(), **kwargs)


def make_envs(cfg: RunConfig, count: int, episode_length: int | None = None) -> list[gym.Env]:
    return [run_env(cfg, max_episode_steps=episode_length or cfg.episode_length) for _ in range(count)]


def build_rule(cfg: RunConfig, env: gym.Env) -> AdaptationRule:
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    return make_rule(cfg.algo, obs_dim, act_dim, cfg.model, cfg.fit, cfg.adaptation, cfg.device)


def build_planner(cfg: RunConfig, env: gym.Env, num_envs: int, seed: int) -> Planner:
    return make_planner(
        cfg.planner, env.action_space.low, env.action_space.high, num_envs=num_envs, device=cfg.device, seed=seed
    )


def build_reward_model(cfg: RunConfig, obs_dim: int, act_dim: int) -> LearnedReward | None:
    """The learned reward of a ``reward=learned`` run (``None`` otherwise), on the run's device."""
    if cfg.reward != LEARNED:
        return None
    return LearnedReward(obs_dim, act_dim, cfg.model.hidden, termination=cfg.termination == LEARNED).to(cfg.device)


def mpc_agent(
    cfg: RunConfig,
    rule: AdaptationRule,
    env: gym.Env,
    num_envs: int,
    seed: int,
    reward_model: LearnedReward | None = None,
) -> MPCAgent:
    """The controller used to collect and to evaluate: ``rule`` + the configured planner, scoring with the
    environment's batched reward and termination, or with ``reward_model``'s where the run learns them."""
    base = env.unwrapped
    reward_fn, termination_fn = base.reward_fn, getattr(base, "termination_fn", None)
    if reward_model is not None:
        reward_fn = reward_model.reward_fn
        if reward_model.termination:
            termination_fn = reward_model.termination_fn
    return MPCAgent(rule, build_planner(cfg, env, num_envs, seed), reward_fn, num_envs, termination_fn)


def child_seed(seed: int, *parts: int) -> int:
    """A child seed that depends only on the run seed and the given counters."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])


def load_run(run_dir: Path) -> RunState:
    """Config, fitted rule and data of a run directory (for eval, video, resume)."""
    return _load_run_and_checkpoint(run_dir)[0]


#: Options an evaluation may change on a trained run (``eval --set``): what acts at test time only.
TEST_TIME_OPTIONS = ("planner.", "adaptation.mixture.", "adaptation.guard", "eval.")


def with_online_rule(st: RunState, algo: str, changes: Sequence[str] = ()) -> RunState:
    """``st`` with its meta-trained model driven by the online rule ``algo`` (e.g. a GrBAL run with MOLe),
    and the test-time options ``changes`` (``KEY=VALUE``, keys under :data:`TEST_TIME_OPTIONS`) applied."""
    refused = [c for c in changes if not c.split("=", 1)[0].startswith(TEST_TIME_OPTIONS)]
    if refused:
        raise ConfigError(
            f"--set {refused[0]}: only test-time options ({', '.join(p + '*' for p in TEST_TIME_OPTIONS)}) "
            "can change on a trained run"
        )
    if algo == st.cfg.algo and not changes:
        return st
    if algo != st.cfg.algo and not same_prior(algo, st.cfg.algo):
        shared = [a for a, entry in REGISTRY.items() if entry.prior and same_prior(a, "grbal")]
        raise ConfigError(
            f"--online {algo}: a {st.cfg.algo} run cannot be evaluated with {algo}; "
            f"the rules that share GrBAL's meta-trained model are {', '.join(shared)}"
        )
    cfg = apply_overrides(copy.deepcopy(st.cfg), list(changes)).validate()
    cfg.algo = algo
    env = run_env(cfg)
    rule = build_rule(cfg, env)
    env.close()
    rule.load_state_dict(st.rule.state_dict())
    return RunState(cfg, rule, st.buffer, st.iteration, st.reward_model, st.offline, st.checkpoint)


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


def _load_run_and_checkpoint(run_dir: Path, cfg: RunConfig | None = None) -> tuple[RunState, dict[str, Any]]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise no_config_error(run_dir)
    if cfg is None:  # loaded to be used here (a resume passes its own)
        cfg = load_config(cfg_path, on_this_machine=True)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if not check_config_digest(state, cfg, cfg_path):
        raise CheckpointError(
            f"{cfg_path} was edited after the last checkpoint was written; restore it (only iterations and device "
            f"may change, with `learn2adapt train --resume {run_dir} --set iterations=N` or `--set device=DEV`) "
            "or start a new run"
        )
    env = run_env(cfg)
    rule = build_rule(cfg, env)
    env.close()
    reward_model = build_reward_model(cfg, rule.obs_dim, rule.act_dim)
    try:
        rule.load_state_dict(state["rule"])
        if reward_model is not None:
            reward_model.load_state_dict(state["reward_model"])
        buffer = TrajectoryBuffer.from_state_dict(
            {"arrays": tensors_to_arrays(state["buffer"]), "tasks_json": state["tasks_json"]}
        )
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint in {run_dir} is inconsistent or does not match its config.json ({str(e).splitlines()[0]}); "
            "restore the files or delete the run directory and start again"
        ) from None
    iteration, episodes = int(state["iteration"]), buffer.num_episodes
    offline = state.get("offline")
    first = int(offline["episodes"]) if offline else cfg.random_episodes
    expected = first + iteration * cfg.episodes_per_iteration
    if iteration < 0 or episodes != expected:
        raise CheckpointError(
            f"checkpoint in {run_dir} is inconsistent: {episodes} episodes stored after iteration {iteration} "
            f"(expected {expected}); restore the file or delete the run directory and start again"
        )
    return RunState(cfg, rule, buffer, iteration, reward_model, offline, str(state["digest"])), state


def _checkpoint(
    run_dir: Path, st: RunState, rng: np.random.Generator, env_steps: int, wall: float, metrics: list[dict[str, Any]]
) -> None:
    """Write the run's checkpoint; ``st.checkpoint`` becomes its digest."""
    bufstate = st.buffer.state_dict()
    st.checkpoint = save_checkpoint(
        run_dir / CHECKPOINT_NAME,
        {
            "format": CHECKPOINT_FORMAT,
            "iteration": st.iteration,
            "rule": st.rule.state_dict(),
            "buffer": arrays_to_tensors(bufstate["arrays"]),
            "tasks_json": bufstate["tasks_json"],
            "numpy_rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "env_steps": env_steps,
            "wall_time": wall,
            "config_digest": config_digest(st.cfg),
            # Every iteration's metrics row up to this one: metrics.csv and tb/ are rebuilt from it.
            "metrics_json": json.dumps(metrics),
            **({} if st.reward_model is None else {"reward_model": st.reward_model.state_dict()}),
            **({} if st.offline is None else {"offline": st.offline}),
        },
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
        rule = build_rule(cfg, env)
        build_planner(cfg, env, cfg.num_envs, cfg.seed)
        if cfg.offline:
            load_recording(Path(cfg.offline), rule.obs_dim, rule.act_dim)
    finally:
        env.close()


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


def train(
    cfg: RunConfig | None,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    changes: dict[str, str] | None = None,
    on_iteration: Callable[[RunState], dict[str, float]] | None = None,
) -> RunState:
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
        if resume:
            cfg = resumed_config(run_dir, changes)
            has_checkpoint = (run_dir / CHECKPOINT_NAME).exists()
            if not has_checkpoint and progress:
                print(f"{run_dir} holds no checkpoint: starting it again from its config")
        else:
            assert cfg is not None
            if (run_dir / CHECKPOINT_NAME).exists():
                raise UserError(
                    f"{run_dir} already holds a run: continue it with `learn2adapt train --resume {run_dir}` "
                    "or choose another --run-dir"
                )
            has_checkpoint = False
        if has_checkpoint:
            st, ckpt = _load_run_and_checkpoint(run_dir, cfg)
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
        else:
            # Starting again in place: whatever a lost run left (results, logs) is kept aside, never deleted.
            kept = move_to_discarded(
                run_dir, [*(run_dir / name for name in _STALE), *sorted(run_dir.glob("eval*.json"))]
            )
            if kept is not None:
                print(f"{run_dir}: the files of the run before this restart were moved to {kept}", flush=True)
            torch.manual_seed(cfg.seed)
            rng = np.random.default_rng(cfg.seed)
            env_steps, wall_before, history = 0, 0.0, []
            sizes_env = run_env(cfg)
            rule = build_rule(cfg, sizes_env)
            sizes_env.close()
            reward_model = build_reward_model(cfg, rule.obs_dim, rule.act_dim)
            st = RunState(cfg, rule, TrajectoryBuffer(rule.obs_dim, rule.act_dim), -1, reward_model)
            save_config(cfg, run_dir / "config.json")
        return _iterate(cfg, st, run_dir, rng, env_steps, wall_before, progress, on_iteration, history)


def _offline_episodes(path: Path, st: RunState) -> tuple[list[Episode], dict[str, Any]]:
    """The episodes of a recording (checked against the model's sizes) and what the checkpoint keeps of it."""
    episodes = load_recording(path, st.rule.obs_dim, st.rule.act_dim).episodes()
    return episodes, {"path": str(path), "sha256": file_digest(path), "episodes": len(episodes)}


def _iterate(
    cfg: RunConfig,
    st: RunState,
    run_dir: Path,
    rng: np.random.Generator,
    env_steps: int,
    wall_before: float,
    progress: bool,
    on_iteration: Callable[[RunState], dict[str, float]] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> RunState:
    """The iterations of :func:`train` from ``st.iteration + 1`` on (the run directory is locked);
    ``history``: the checkpoint's metrics rows (None: a checkpoint from before they were kept)."""
    envs = make_envs(cfg, cfg.num_envs)
    log = MetricsLog(run_dir, history=history)
    t_start = time.time() - wall_before
    try:
        for it in range(st.iteration + 1, cfg.iterations + 1):
            t_iter = time.time()
            st.checkpoint = ""  # from here the weights in memory are no checkpoint's (a probe records none)
            policy: Policy
            if it == 0:
                space = envs[0].action_space
                assert isinstance(space, gym.spaces.Box)
                policy = RandomPolicy(space, cfg.num_envs, rng)
                n_episodes = cfg.random_episodes
            else:
                policy = mpc_agent(cfg, st.rule, envs[0], cfg.num_envs, child_seed(cfg.seed, it), st.reward_model)
                n_episodes = cfg.episodes_per_iteration
            clock: dict[str, float] = {"policy_seconds": 0.0, "env_seconds": 0.0}
            if it == 0 and cfg.offline:  # recorded transitions instead of random actions: no environment steps
                episodes, st.offline = _offline_episodes(Path(cfg.offline), st)
            else:
                base = envs[0].unwrapped
                episode_seeds = rng.integers(0, 2**31 - 1, size=n_episodes)
                tasks = [base.training_task(rng, cfg.nominal) for _ in range(n_episodes)]
                episodes = run_episodes(
                    envs,
                    policy,
                    n_episodes,
                    lambda k, tasks=tasks, seeds=episode_seeds: (tasks[k], int(seeds[k])),
                    desc=f"iter {it} collect",
                    progress=progress,
                    timing=clock,
                )
            for k, ep in enumerate(episodes):
                bad = ep.first_non_finite()
                if bad is not None:
                    raise NonFiniteData(
                        f"iteration {it}: {cfg.env} returned a non-finite {bad} of episode {k} "
                        f"(task {json.dumps(ep.tasks[0])}); nothing of this iteration was stored; "
                        f"{_what_is_kept(st.iteration, run_dir)}"
                    )
            for ep in episodes:
                st.buffer.add_episode(ep)
            steps = sum(len(ep) for ep in episodes)
            env_steps += steps
            t_collect = time.time() - t_iter
            try:
                fit_metrics = st.rule.fit(st.buffer, rng, progress=progress)
                if st.reward_model is not None:
                    fit_metrics.update(st.reward_model.fit(st.buffer, cfg.fit, rng, progress=progress))
            except NonFiniteLossError as e:
                raise TrainingDiverged(  # the data were checked finite at collection: the optimiser diverged
                    f"iteration {it}: {e}; {_what_is_kept(st.iteration, run_dir)}; "
                    "start again with a lower fit.lr or fit.grad_clip"
                ) from None
            except NotEnoughSegments as e:
                raise ConfigError(f"iteration {it}: {e}; {_what_is_kept(st.iteration, run_dir)}") from None
            st.iteration = it
            returns = [ep.total_reward for ep in episodes]
            velocities = forward_velocities(envs[0], episodes)
            row: dict[str, Any] = {
                "iteration": it,
                "env_steps": env_steps,
                "episodes": st.buffer.num_episodes,
                "return_mean": float(np.mean(returns)),
                "return_std": float(np.std(returns)),
                **({} if velocities is None else {"velocity_mean": float(np.mean(velocities))}),
                "collect_seconds": round(t_collect, 3),
                "collect_policy_seconds": round(clock["policy_seconds"], 3),
                "collect_env_seconds": round(clock["env_seconds"], 3),
                "fit_seconds": round(time.time() - t_iter - t_collect, 3),
                "wall_seconds": round(time.time() - t_start, 3),
                **{
                    k: (float(v) if isinstance(v, (int, float)) and math.isfinite(v) else v)
                    for k, v in fit_metrics.items()
                },
            }
            if on_iteration is not None:
                torch_state = torch.get_rng_state()
                row.update(on_iteration(st))
                torch.set_rng_state(torch_state)
            log.log(row, env_steps)
            _checkpoint(run_dir, st, rng, env_steps, time.time() - t_start, log.rows)
            if progress:
                eta = remaining_seconds(log.rows, cfg.iterations)
                print(
                    f"[{cfg.algo}] iter {it}/{cfg.iterations}  steps {env_steps}  return {row['return_mean']:.1f}  "
                    f"val loss {fit_metrics.get('fit/val_loss', float('nan')):.4g}  "
                    f"({row['collect_seconds']:.0f}s collect, {row['fit_seconds']:.0f}s fit, "
                    f"{fit_metrics.get('fit/epochs', 0):.0f} epochs)  elapsed {format_duration(row['wall_seconds'])}"
                    + ("" if eta is None else f", ETA {format_duration(eta)}"),
                    flush=True,
                )
        # The final checkpoint's digest: an evaluation is reused only for the model it evaluated.
        done = {"iteration": st.iteration, "env_steps": env_steps, "checkpoint": st.checkpoint}
        atomic_write_text(run_dir / "DONE", json.dumps(done) + "\n")
    finally:
        log.close()
        for env in envs:
            env.close()
    return st
