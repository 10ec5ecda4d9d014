"""PPO and SAC (stable-baselines3) trained and checkpointed by learn2adapt's rules.

* **Same task distribution.** Every training episode runs under a training task drawn
  afresh (:class:`TrainingTasks`), with the run's episode length, as the model-based methods
  collect. The policy observes the environment's observation only (no task label), like the
  model-based controllers.
* **Checkpoints.** At the first rollout end after every ``baseline.checkpoint_every`` environment
  steps (every step for SAC, every ``baseline.rollout`` steps for PPO) the run writes, with
  :func:`learn2adapt.run.checkpoint.save_checkpoint` (atomic, checksummed, loaded with
  ``weights_only=True``): the networks' and optimisers' state dicts (``get_parameters``), the
  torch variables (SAC's entropy coefficient), the step count, SAC's replay buffer arrays and
  the RNG states. Nothing is pickled, so loading executes no code (SB3's own ``.zip`` would).
  A killed run resumes from its last checkpoint; the episode in progress then starts over.
* **Metrics.** One ``metrics.csv`` row per checkpoint: environment steps, the mean return of
  the episodes finished since the previous row, wall-clock.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from learn2adapt.errors import CheckpointError, ConfigError, UserError
from learn2adapt.run.build import run_env
from learn2adapt.run.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from learn2adapt.run.config import RunConfig
from learn2adapt.run.digest import check_config_digest, config_digest, restamp_config_digest, resumed_config
from learn2adapt.run.metrics_log import MetricsLog
from learn2adapt.run.options import load_config, save_config
from learn2adapt.run.run_dir import (
    RunLock,
    atomic_write_text,
    check_writable,
    no_config_error,
    set_aside_evaluations,
)

#: How the optional dependency is installed (named in the error when it is missing).
SB3_INSTALL = 'pip install "learn2adapt[baselines]"  (or: pip install stable-baselines3)'
CHECKPOINT_FORMAT = 1
_REPLAY_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _sb3(algo: str) -> Any:
    try:
        import stable_baselines3
    except ImportError:
        raise UserError(f"--algo {algo} needs stable-baselines3, which is not installed: {SB3_INSTALL}") from None
    return stable_baselines3


class TrainingTasks(gym.Wrapper):
    """Each episode under a training task drawn afresh from the environment's training split
    (or the nominal task, with ``nominal``)."""

    def __init__(self, env: gym.Env, rng: np.random.Generator, nominal: bool = False) -> None:
        super().__init__(env)
        self.rng, self.nominal = rng, nominal

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        base = self.env.unwrapped
        base.set_task(base.training_task(self.rng, self.nominal))  # type: ignore[attr-defined]
        return self.env.reset(seed=seed, options=options)


def _model(cfg: RunConfig, env: gym.Env) -> Any:
    sb3, b = _sb3(cfg.algo), cfg.baseline
    common = {"learning_rate": b.learning_rate, "batch_size": b.batch_size, "seed": cfg.seed, "device": cfg.device}
    if cfg.algo == "ppo":
        return sb3.PPO("MlpPolicy", env, n_steps=b.rollout, verbose=0, **common)
    if cfg.algo == "sac":
        buffer = min(b.steps, 1_000_000)
        return sb3.SAC("MlpPolicy", env, learning_starts=b.learning_starts, buffer_size=buffer, verbose=0, **common)
    raise ConfigError(f"{cfg.algo} is not a model-free baseline (ppo | sac)")


def _attr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class BaselineState:
    """A model-free run: its config, its SB3 model and how far it trained."""

    cfg: RunConfig
    model: Any
    env_steps: int
    iteration: int  # checkpoints written so far
    checkpoint: str = ""  # the checksum of the checkpoint it was loaded from ("": in memory)

    @property
    def train_env_steps(self) -> int:
        return self.env_steps

    def controller(self, envs: Sequence[gym.Env], seed: int) -> SB3Policy:
        """The deterministic policy, as the evaluation's rollouts want it."""
        return SB3Policy(self.model)


class SB3Policy:
    """A trained SB3 policy behind the rollout ``Policy`` protocol (deterministic actions)."""

    online = None  # no adaptation state kept from step to step

    def __init__(self, model: Any) -> None:
        self.model = model

    def reset(self, env_index: int) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(action, np.float32)

    def observe(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        pass


# --- checkpoints ----------------------------------------------------------------------------------
def _state(model: Any, cfg: RunConfig, iteration: int, wall: float) -> dict[str, Any]:
    state: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "algo": cfg.algo,
        "iteration": iteration,
        "parameters": model.get_parameters(),
        "variables": {name: _attr(model, name).detach().cpu() for name in model._get_torch_save_params()[1]},
        "env_steps": int(model.num_timesteps),
        "episodes": int(model._episode_num),
        "wall_time": wall,
        "torch_rng": torch.get_rng_state(),
        "config_digest": config_digest(cfg),
    }
    replay = getattr(model, "replay_buffer", None)
    if replay is not None:
        n = replay.buffer_size if replay.full else replay.pos
        state["replay"] = {k: torch.from_numpy(np.ascontiguousarray(getattr(replay, k)[:n])) for k in _REPLAY_FIELDS}
        state["replay_pos"], state["replay_full"] = int(replay.pos), bool(replay.full)
    return state


def _restore(model: Any, state: dict[str, Any]) -> None:
    model.set_parameters(state["parameters"], exact_match=True, device=model.device)
    with torch.no_grad():
        for name, value in state["variables"].items():
            _attr(model, name).copy_(value.to(model.device))
    model.num_timesteps = int(state["env_steps"])
    model._episode_num = int(state["episodes"])
    torch.set_rng_state(state["torch_rng"])
    replay = getattr(model, "replay_buffer", None)
    if replay is not None and "replay" in state:
        for k, v in state["replay"].items():
            getattr(replay, k)[: len(v)] = v.numpy()
        replay.pos, replay.full = int(state["replay_pos"]), bool(state["replay_full"])


def _restore_checkpoint(model: Any, cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Load ``run_dir``'s checkpoint into ``model`` after checking it belongs to ``cfg``; returns it."""
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if "config_digest" not in state or not check_config_digest(state, cfg, run_dir / "config.json"):
        raise CheckpointError(f"{run_dir / 'config.json'} was edited after the last checkpoint was written; restore it")
    try:
        _restore(model, state)
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint in {run_dir} does not match its config ({str(e).splitlines()[0]})") from None
    return state


def load_baseline(run_dir: Path) -> BaselineState:
    """Config and trained policy of a model-free run directory (for eval; a resume reads its own config)."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.json", on_this_machine=True)
    model = _model(cfg, run_env(cfg, max_episode_steps=cfg.episode_length))
    state = _restore_checkpoint(model, cfg, run_dir)
    return BaselineState(cfg, model, int(state["env_steps"]), int(state["iteration"]), str(state["digest"]))


# --- training -------------------------------------------------------------------------------------
def train_baseline(
    cfg: RunConfig | None,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    changes: dict[str, str] | None = None,
    on_checkpoint: Callable[[BaselineState], dict[str, float]] | None = None,
) -> BaselineState:
    """Train (or resume) a PPO / SAC run for ``baseline.steps`` environment steps; see the module docstring.

    ``on_checkpoint``: its figures join each checkpoint's ``metrics.csv`` row (as
    ``train``'s ``on_iteration``; the torch random stream is restored after it).
    """
    run_dir = Path(run_dir)
    if not resume:
        assert cfg is not None
        cfg.validate()
        _sb3(cfg.algo)
    elif not (run_dir / "config.json").exists():
        raise no_config_error(run_dir, "resume")
    with RunLock(run_dir):
        check_writable(run_dir)
        if resume:
            cfg = resumed_config(run_dir, changes)
        assert cfg is not None
        env = run_env(cfg, max_episode_steps=cfg.episode_length)
        env = TrainingTasks(env, np.random.default_rng(cfg.seed), cfg.nominal)
        env = _sb3(cfg.algo).common.monitor.Monitor(env)
        model = _model(cfg, env)
        iteration, wall_before = 0, 0.0
        if resume and (run_dir / CHECKPOINT_NAME).exists():
            state = _restore_checkpoint(model, cfg, run_dir)
            iteration, wall_before = int(state["iteration"]), float(state["wall_time"])
            if (run_dir / "DONE").exists() and cfg.baseline.steps > int(model.num_timesteps):
                set_aside_evaluations(run_dir)
            (run_dir / "DONE").unlink(missing_ok=True)
            restamp_config_digest(run_dir / CHECKPOINT_NAME, state, cfg)
        elif (run_dir / CHECKPOINT_NAME).exists():
            raise UserError(f"{run_dir} already holds a run: continue it with `learn2adapt train --resume {run_dir}`")
        save_config(cfg, run_dir / "config.json")
        log = MetricsLog(run_dir)
        checkpointer = _Checkpointer(cfg, run_dir, log, iteration, time.time() - wall_before, progress, on_checkpoint)
        try:
            remaining = cfg.baseline.steps - int(model.num_timesteps)
            if remaining > 0:
                model.learn(total_timesteps=remaining, callback=checkpointer.callback(), reset_num_timesteps=False)
            checkpointer.write(model)
        finally:
            log.close()
            env.close()
        atomic_write_text(
            run_dir / "DONE",
            json.dumps({"iteration": checkpointer.iteration, "env_steps": int(model.num_timesteps)}) + "\n",
        )
        return BaselineState(cfg, model, int(model.num_timesteps), checkpointer.iteration)


class _Checkpointer:
    """Writes a checkpoint and a metrics row every ``baseline.checkpoint_every`` steps."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        log: MetricsLog,
        iteration: int,
        t0: float,
        progress: bool,
        on_checkpoint: Callable[[BaselineState], dict[str, float]] | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.log, self.iteration, self.t0 = cfg, run_dir, log, iteration, t0
        self.progress, self.on_checkpoint = progress, on_checkpoint
        self.returns: list[float] = []
        self.episodes = 0
        self.last_steps = -1
        self.t_last = time.time()

    def callback(self) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        outer = self

        class Callback(BaseCallback):
            def _on_step(self) -> bool:
                for info in self.locals.get("infos", []):
                    if "episode" in info:
                        outer.returns.append(float(info["episode"]["r"]))
                        outer.episodes += 1
                return True

            def _on_rollout_end(self) -> None:
                # At a rollout's end the step's transition is stored (SAC's replay buffer): a
                # checkpoint written here holds every step it counts.
                every = outer.cfg.baseline.checkpoint_every
                if self.model.num_timesteps // every > max(outer.last_steps, 0) // every:
                    outer.write(self.model)

        return Callback()

    def write(self, model: Any) -> None:
        steps = int(model.num_timesteps)
        if steps == self.last_steps:
            return
        self.iteration += 1
        now = time.time()
        row = {
            "iteration": self.iteration,
            "env_steps": steps,
            "episodes": self.episodes,
            "return_mean": float(np.mean(self.returns)) if self.returns else math.nan,
            "collect_seconds": round(now - self.t_last, 3),
            "fit_seconds": 0.0,
            "wall_seconds": round(now - self.t0, 3),
        }
        if self.on_checkpoint is not None:
            torch_state = torch.get_rng_state()
            row.update(self.on_checkpoint(BaselineState(self.cfg, model, steps, self.iteration)))
            torch.set_rng_state(torch_state)
        self.log.log(row, steps)
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, _state(model, self.cfg, self.iteration, now - self.t0))
        if self.progress:
            print(
                f"[{self.cfg.algo}] {steps}/{self.cfg.baseline.steps} steps  return {row['return_mean']:.1f}  "
                f"({len(self.returns)} episodes)",
                flush=True,
            )
        self.returns, self.last_steps, self.t_last = [], steps, now
