"""Device correctness without a GPU: every tensor the hot paths create follows its inputs.

Under ``with torch.device("meta"):`` a factory call without an explicit device (``torch.zeros(n)``)
makes a meta tensor, and combining it with the CPU inputs raises. So running the batched
rewards and terminations of every family, every planner and every rule's predictor and fit
there, on CPU inputs, finds each place that would put a tensor on the wrong device on a GPU
(the first GPU run crashed exactly so, in the locomotion termination).
"""

import numpy as np
import pytest
import torch

from learn2adapt.adaptation import ALGORITHMS, MODEL_FREE, make_rule
from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.data.recent_history import RecentHistory
from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer
from learn2adapt.envs import make_env, registered_ids
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.planning import PLANNERS, make_planner
from learn2adapt.run.agent import MPCAgent

STRICT = torch.device("meta")


def _cpu_batch(env, shape=(2, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    return (
        torch.randn(*shape, obs_dim, generator=g),
        torch.rand(*shape, act_dim, generator=g) * 2 - 1,
        torch.randn(*shape, obs_dim, generator=g),
    )


@pytest.mark.parametrize("env_id", registered_ids())
def test_rewards_and_terminations_stay_on_the_device_of_their_inputs(env_id):
    env = make_env(env_id)
    base = env.unwrapped
    obs, act, nxt = _cpu_batch(env)
    with STRICT:
        reward = base.reward_fn(obs, act, nxt)
        done = base.termination_fn(obs, act, nxt) if hasattr(base, "termination_fn") else None
    assert reward.device.type == "cpu" and reward.shape == (2, 3)
    if done is not None:
        assert done.device.type == "cpu" and done.shape == (2, 3) and done.dtype == torch.bool
    env.close()


def _toy_predict(obs, act):
    return obs + 0.1 * act.sum(-1, keepdim=True)


@pytest.mark.parametrize("name", list(PLANNERS))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_planners_create_nothing_off_their_device(name, precision):
    env = make_env("learn2adapt/HalfCheetahDisabledJoint-v0")
    base = env.unwrapped
    obs = torch.randn(3, env.observation_space.shape[0])
    with STRICT:
        planner = make_planner(
            name,
            env.action_space.low,
            env.action_space.high,
            num_envs=3,
            device="cpu",
            seed=0,
            horizon=4,
            num_candidates=40,
            precision=precision,
        )
        for _ in range(2):  # the second call uses the warm-start state
            action = planner.plan(_toy_predict, base.reward_fn, obs, base.termination_fn)
        planner.reset(torch.tensor([True, False, False], device="cpu"))
    assert action.device.type == "cpu" and action.shape == (3, env.action_space.shape[0])
    env.close()


def _buffer(env, episodes=3, length=40, seed=0):
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    buf = TrajectoryBuffer(obs_dim, act_dim)
    for _ in range(episodes):
        obs = rng.normal(size=(length, obs_dim)).astype(np.float32)
        act = rng.uniform(-1, 1, (length, act_dim)).astype(np.float32)
        buf.add_episode(
            Episode(obs, act, obs + 0.1, np.zeros(length, np.float32), np.zeros(length, bool), [{}] * length)
        )
    return buf


@pytest.mark.parametrize("algo", [a for a in ALGORITHMS if a not in MODEL_FREE])
def test_rules_fit_adapt_and_predict_on_their_device(algo):
    env = make_env("learn2adapt/HalfCheetahDisabledJoint-v0")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    adapt = AdaptationConfig(past=4, future=4, meta_batch=4, rnn_hidden=8)
    rule = make_rule(
        algo, obs_dim, act_dim, ModelConfig(hidden=[8]), FitConfig(max_epochs=1, batch_size=16), adapt, "cpu"
    )
    buf = _buffer(env)
    planner = make_planner(
        "rs",
        env.action_space.low,
        env.action_space.high,
        num_envs=2,
        device="cpu",
        seed=0,
        horizon=3,
        num_candidates=20,
    )
    agent = MPCAgent(rule, planner, env.unwrapped.reward_fn, 2, env.unwrapped.termination_fn)
    obs = np.zeros((2, obs_dim), np.float32)
    act = np.zeros((2, act_dim), np.float32)
    history = RecentHistory(2, 4, obs_dim, act_dim, device="cpu")
    new = [torch.zeros(2, d) for d in (obs_dim, act_dim, obs_dim)]
    with STRICT:
        rule.fit(buf, np.random.default_rng(0), progress=False)
        agent.reset(0)
        for _ in range(3):  # 0, 1 and 2 transitions in the window
            action = agent.act(obs)
            agent.observe(obs, act, obs + 0.1)
        history.push(*new)
        history.reset(1)
    assert action.shape == (2, act_dim) and np.isfinite(action).all()
    env.close()
