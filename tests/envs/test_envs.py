"""Tests of the environment suite: the TaskEnv contract on every registered family.

Rollouts are short (tens of steps) so the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import learn2adapt  # noqa: F401  (registers the ids)
from learn2adapt.envs import SPLITS, TaskEnv, make_env, registered_ids

IDS = registered_ids()


def _collect(env: gym.Env, steps: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Random-action transitions (obs, act, next_obs, reward, terminated), resetting as needed."""
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out: tuple[list, ...] = ([], [], [], [], [])
    for _ in range(steps):
        act = env.action_space.sample()
        nxt, rew, term, trunc, _ = env.step(act)
        for lst, v in zip(out, (obs, act, nxt, rew, term)):
            lst.append(v)
        obs = nxt
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
    return tuple(np.asarray(lst) for lst in out)


#: Families whose task acts at a place (terrain, pier): where to put the torso (x, z offset)
#: so that a few steps already feel the task.
PLACE = {"learn2adapt/HalfCheetahSlopes-v0": 10.0, "learn2adapt/HalfCheetahPier-v0": 6.0}


def _reset_at_task_site(env: gym.Env, seed: int) -> None:
    env.reset(seed=seed)
    if env.spec.id in PLACE:
        base = env.unwrapped
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        qpos[0] = PLACE[env.spec.id]
        if hasattr(base, "terrain_height"):  # stand on the terrain there
            qpos[1] += float(base.terrain_height(qpos[0]))
        base.set_state(qpos, qvel)


@pytest.fixture(scope="module", params=IDS)
def env(request: pytest.FixtureRequest) -> gym.Env:
    e = make_env(request.param)
    yield e
    e.close()


def test_ids_registered_under_namespace() -> None:
    assert "learn2adapt/PendulumVaried-v0" in IDS and "learn2adapt/CartPoleVaried-v0" in IDS
    for env_id in IDS:
        assert env_id.startswith("learn2adapt/") and env_id in gym.registry


def test_make_env_unknown_id_is_clear() -> None:
    with pytest.raises(ValueError, match=r"unknown environment 'Nope-v0': ours: .*PendulumVaried.*gymnasium.make"):
        make_env("Nope-v0")


def test_check_env(env: gym.Env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
    assert isinstance(env.unwrapped, TaskEnv)


def test_reward_fn_matches_step(env: gym.Env) -> None:
    base = env.unwrapped
    base.set_task(base.sample_task("train", np.random.default_rng(1)))
    obs, act, nxt, rew, term = _collect(env, 120)
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    pred = base.reward_fn(as_t(obs), as_t(act), as_t(nxt))
    assert pred.shape == rew.shape
    np.testing.assert_allclose(pred.numpy(), rew, rtol=1e-5, atol=1e-5)
    # Arbitrary leading dims: (2, n/2, d) gives the same numbers.
    half = len(rew) // 2 * 2
    pred2 = base.reward_fn(*(as_t(a[:half]).reshape(2, half // 2, -1) for a in (obs, act, nxt)))
    np.testing.assert_allclose(pred2.reshape(-1).numpy(), pred[:half].numpy(), rtol=1e-6)
    done = base.termination_fn(as_t(obs), as_t(act), as_t(nxt))
    np.testing.assert_array_equal(done.numpy(), term)


def test_tasks_change_dynamics(env: gym.Env) -> None:
    """Same state and action, two test tasks: different next states."""
    base = env.unwrapped
    tasks = base.list_tasks("test") + base.list_tasks("train")
    a, b = tasks[0], tasks[-1]
    action = 0.25 * env.action_space.high  # small: no speed clipping hides the task
    next_states = []
    for task in (a, b):
        base.set_task(task)
        _reset_at_task_site(env, seed=3)
        for _ in range(8 if env.spec.id in PLACE else 3):
            obs, *_ = env.step(action)
        next_states.append(obs)
    assert not np.allclose(next_states[0], next_states[1], atol=1e-6), (a, b)


def test_set_task_mid_episode_takes_effect_next_step(env: gym.Env) -> None:
    base = env.unwrapped
    first, second = base.list_tasks("train")[0], base.list_tasks("test")[-1]
    action = 0.25 * env.action_space.high  # small: no speed clipping hides the task
    trajs = []
    for switch in (False, True):
        base.set_task(first)
        _reset_at_task_site(env, seed=5)
        obs_seq, infos = [], []
        k = 6 if env.spec.id in PLACE else 2  # step of the switch (terrain: once in contact)
        for t in range(k + 2):
            if switch and t == k:
                base.set_task(second)
            obs, _, _, _, info = env.step(action)
            obs_seq.append(obs)
            infos.append(info["task"])
        trajs.append((obs_seq, infos))
    (plain, plain_info), (switched, switched_info) = trajs
    np.testing.assert_array_equal(plain[k - 1], switched[k - 1])  # before the switch: identical
    assert not np.allclose(plain[k], switched[k], atol=1e-7)  # the very next step differs
    assert plain_info[k] == first
    assert switched_info[k - 1] == first and switched_info[k] == second and base.task == second


def test_nominal_option_trains_and_tests_on_the_unmodified_system(env: gym.Env) -> None:
    base = env.unwrapped
    nominal = base.nominal_task()
    rng = np.random.default_rng(0)
    assert all(base.training_task(rng, nominal=True) == nominal for _ in range(5))
    assert base.test_tasks(nominal=True) == [nominal]
    keys = lambda ts: {json.dumps(t, sort_keys=True) for t in ts}  # noqa: E731
    assert keys(base.test_tasks()) == keys(base.list_tasks("test"))
    # Without the option: the train split, draw for draw.
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    assert [base.training_task(a) for _ in range(5)] == [base.sample_task("train", b) for _ in range(5)]


def test_splits_disjoint_and_serialisable(env: gym.Env) -> None:
    base = env.unwrapped
    train, test = base.list_tasks("train"), base.list_tasks("test")
    assert train and test
    keys = lambda ts: {json.dumps(t, sort_keys=True) for t in ts}  # noqa: E731
    assert not keys(train) & keys(test)
    rng = np.random.default_rng(0)
    sampled = {s: [base.sample_task(s, rng) for _ in range(50)] for s in SPLITS}
    assert not keys(sampled["train"]) & keys(sampled["test"])
    assert not keys(sampled["train"]) & keys(test) and not keys(sampled["test"]) & keys(train)
    space = getattr(base, "param_space", None)
    if space is not None:  # scalar-parameter families: every value inside its own split's ranges
        for split in SPLITS:
            assert all(space.split_of(t) == split for t in sampled[split] + base.list_tasks(split))
    with pytest.raises(ValueError):
        base.list_tasks("validation")
    base.set_task(test[0])
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert json.loads(json.dumps(info["task"])) == test[0]
