"""The objects a run is made of, built from its :class:`~learn2adapt.run.config.RunConfig`.

Its environments, adaptation rule, planner, learned reward and the MPC agent that joins them,
and the child seeds that make each iteration's and evaluation's random streams depend only on
the run seed. Training (:mod:`learn2adapt.run.loop`), evaluation and the real-time controller
build them here, so a trained run is rebuilt exactly as it was trained.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from learn2adapt.adaptation import make_rule
from learn2adapt.adaptation.base import AdaptationRule
from learn2adapt.envs import make_env
from learn2adapt.envs.gym_task_env import LEARNED
from learn2adapt.models.reward import LearnedReward
from learn2adapt.planning import make_planner
from learn2adapt.planning.base import Planner
from learn2adapt.run.agent import MPCAgent
from learn2adapt.run.config import RunConfig


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
