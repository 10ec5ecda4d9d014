"""A run's state: what training has produced, as saved in its checkpoint and loaded from its directory.

:class:`RunState` holds the configuration, the (meta-)trained rule, the data and the last
finished iteration; :func:`load_run` rebuilds it from a run directory (for eval, video, resume),
after checking that the checkpoint belongs to the run's ``config.json``, and
:func:`save_run_checkpoint` writes everything a killed run needs to resume with no collected data
lost (model, optimiser, normaliser, data, RNG states).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from learn2adapt.adaptation import REGISTRY, same_prior
from learn2adapt.adaptation.base import AdaptationRule
from learn2adapt.data.trajectory_buffer import TrajectoryBuffer
from learn2adapt.errors import CheckpointError, ConfigError
from learn2adapt.models.reward import LearnedReward
from learn2adapt.run.agent import MPCAgent
from learn2adapt.run.build import build_reward_model, build_rule, mpc_agent, run_env
from learn2adapt.run.checkpoint import (
    CHECKPOINT_NAME,
    arrays_to_tensors,
    load_checkpoint,
    save_checkpoint,
    tensors_to_arrays,
)
from learn2adapt.run.config import RunConfig
from learn2adapt.run.digest import check_config_digest, config_digest
from learn2adapt.run.options import apply_overrides, check_read, load_config
from learn2adapt.run.run_dir import no_config_error

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


def load_run(run_dir: Path) -> RunState:
    """Config, fitted rule and data of a run directory (for eval, video, resume)."""
    return load_run_and_checkpoint(run_dir)[0]


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
    check_read(changes, [algo])  # e.g. adaptation.guard on an MB run: refused, not ignored
    cfg = apply_overrides(copy.deepcopy(st.cfg), list(changes)).validate()
    cfg.algo = algo
    env = run_env(cfg)
    rule = build_rule(cfg, env)
    env.close()
    rule.load_state_dict(st.rule.state_dict())
    return RunState(cfg, rule, st.buffer, st.iteration, st.reward_model, st.offline, st.checkpoint)


def load_run_and_checkpoint(run_dir: Path, cfg: RunConfig | None = None) -> tuple[RunState, dict[str, Any]]:
    """:func:`load_run`, and the checkpoint as read (a resume passes its own ``cfg``: the saved one, changed)."""
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


def save_run_checkpoint(
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
