"""Task schedules: switches happen at the promised steps, change the dynamics, restore on reset."""

from __future__ import annotations

import json

import numpy as np
import pytest

import learn2adapt  # noqa: F401
from learn2adapt.envs import make_env
from learn2adapt.envs.catalog import describe_env
from learn2adapt.envs.schedules import (
    KINDS,
    PRESETS,
    TaskSchedule,
    list_schedules,
    parse_schedule,
    schedules_for,
    wrap_schedule,
)
from tests.conftest import PENDULUM

ACTION = np.array([0.3], dtype=np.float32)


def _run(env, steps: int, seed: int = 0) -> tuple[list[np.ndarray], list[dict]]:
    obs_seq, tasks = [], []
    _, info = env.reset(seed=seed)
    tasks.append(info["task"])
    for _ in range(steps):
        obs, _, _, _, info = env.step(ACTION)
        obs_seq.append(obs)
        tasks.append(info["task"])
    return obs_seq, tasks  # tasks[0]: at reset; tasks[k + 1]: in force during step k


def test_parse_every_kind_and_preset() -> None:
    for kind in KINDS.values():
        assert parse_schedule(kind.example).spec == kind.example
    for name in PRESETS:
        assert parse_schedule(name).spec == name
    names = {s["name"] for s in list_schedules()}
    assert set(KINDS) | set(PRESETS) == names
    assert "paper-ant-crippled" in schedules_for("learn2adapt/AntCrippledLeg-v0")
    assert "paper-ant-crippled" not in schedules_for(PENDULUM)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("teleport:t=3", "unknown schedule 'teleport'; available: fixed, switch"),
        ("switch:t", "must be key=value"),
        ("switch:when=3", "bad options"),
        ("random:rate=2", "rate=2.0 must be a number in"),
        ("switch:t=3,pool=valid", "pool='valid'"),
        ("switch:t=3,t=4", "t is given twice"),
        ("sequence:A=20", "at least two segments"),
        ("sequence:A=20,A=30,B=5", "A follows itself; merge"),
        ("sequence:A=20,2b=30", "task name '2b' must be a name"),
        ("sequence:A=20,B=fast", "B \\(its length\\)='fast' must be a number"),
        ("sequence:A=20,B=-3", "must be positive"),
        ("sequence:A=20,B=2.5", "integer number of steps"),
        ("sequence:A=20,B", "must be key=value"),
    ],
)
def test_bad_specs_are_clear(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_schedule(spec)


def test_switch_at_t_equals_manual_set_task() -> None:
    env = make_env(PENDULUM, schedule="switch:t=5,pool=test")
    base = env.unwrapped
    a = base.list_tasks("train")[1]
    base.set_task(a)
    obs, tasks = _run(env, 10)
    assert all(t == a for t in tasks[:6])
    b = tasks[6]
    assert b != a and b in base.list_tasks("test") and all(t == b for t in tasks[6:])
    # The same episode by hand: set_task(b) before step 5.
    plain = make_env(PENDULUM)
    plain.unwrapped.set_task(a)
    plain.reset(seed=0)
    for k in range(10):
        if k == 5:
            plain.unwrapped.set_task(b)
        o, *_ = plain.step(ACTION)
        np.testing.assert_array_equal(o, obs[k])
    # Reset restores the base task and the same seed replays the same switch.
    obs2, tasks2 = _run(env, 10)
    assert tasks2 == tasks and all(np.array_equal(x, y) for x, y in zip(obs, obs2))


def test_random_rate_one_switches_every_step() -> None:
    env = make_env(PENDULUM, schedule="random:rate=1")
    _, tasks = _run(env, 8)
    keys = [json.dumps(t, sort_keys=True) for t in tasks[1:]]
    assert all(k1 != k2 for k1, k2 in zip(keys, keys[1:]))


def test_random_rate_small_switches_about_rate() -> None:
    env = make_env(PENDULUM, schedule="random:rate=0.05", max_episode_steps=2000)
    _, tasks = _run(env, 2000, seed=1)
    switches = sum(a != b for a, b in zip(tasks[1:], tasks[2:]))
    assert 60 <= switches <= 140  # Binomial(1999, 0.05): mean 100, sd ~10


def test_recurring_alternates() -> None:
    env = make_env(PENDULUM, schedule="recurring:period=3")
    a = env.unwrapped.list_tasks("train")[0]
    env.unwrapped.set_task(a)
    _, tasks = _run(env, 12)
    during = tasks[1:]
    b = during[3]
    assert b != a
    assert during == [a] * 3 + [b] * 3 + [a] * 3 + [b] * 3


def test_recurring_over_three_tasks_returns_after_the_others() -> None:
    env = make_env(PENDULUM, schedule="recurring:period=2,tasks=3")
    a = env.unwrapped.list_tasks("test")[0]
    env.unwrapped.set_task(a)
    _, tasks = _run(env, 12)
    during = tasks[1:]
    b, c = during[2], during[4]
    assert len({json.dumps(t, sort_keys=True) for t in (a, b, c)}) == 3
    assert during == [a, a, b, b, c, c] * 2


@pytest.mark.parametrize("spec", ["recurring:period=2,tasks=1", "recurring:period=2,tasks=2.5"])
def test_recurring_needs_an_integer_number_of_tasks_of_two_or_more(spec: str) -> None:
    with pytest.raises(ValueError, match="tasks="):
        parse_schedule(spec)


def test_recurring_with_more_tasks_than_the_pool_holds_is_a_clear_error() -> None:
    env = make_env(PENDULUM, schedule="recurring:period=2,tasks=5,pool=test")  # 4 test tasks
    env.unwrapped.set_task(env.unwrapped.list_tasks("test")[0])
    with pytest.raises(ValueError, match="needs 4 tasks besides .* which has 3"):
        env.reset(seed=0)


def test_sequence_switches_at_exactly_the_given_steps_and_names_come_back() -> None:
    env = make_env(PENDULUM, schedule="sequence:A=5,B=3,A=4,C=2,B=3")
    a = env.unwrapped.list_tasks("test")[0]
    env.unwrapped.set_task(a)
    _, tasks = _run(env, 20)
    during = tasks[1:]
    b, c = during[5], during[12]
    assert len({json.dumps(t, sort_keys=True) for t in (a, b, c)}) == 3
    tests = [json.dumps(t, sort_keys=True) for t in env.unwrapped.list_tasks("test")]
    assert json.dumps(b, sort_keys=True) in tests and json.dumps(c, sort_keys=True) in tests  # pool=test
    # Unequal segments in the given order; after the last segment its task stays in force.
    assert during == [a] * 5 + [b] * 3 + [a] * 4 + [c] * 2 + [b] * 6
    _, again = _run(env, 20, seed=0)
    assert again == tasks  # the draw comes from the reset seed


def test_sequence_lengths_may_be_fractions_and_the_pool_must_hold_its_tasks() -> None:
    env = make_env(PENDULUM, schedule="sequence:A=0.25,B=0.5,A=5", max_episode_steps=20)
    a = env.unwrapped.list_tasks("test")[0]
    env.unwrapped.set_task(a)
    _, tasks = _run(env, 20)
    assert tasks[1:6] == [a] * 5 and tasks[6] != a and tasks[6:16] == [tasks[6]] * 10 and tasks[16:] == [a] * 5
    many = make_env(PENDULUM, schedule="sequence:A=2,B=2,C=2,D=2,E=2")  # 4 test tasks: A + 3 others at most
    many.unwrapped.set_task(a)
    with pytest.raises(ValueError, match="names 5 tasks .* pool 'test' has 3 besides"):
        many.reset(seed=0)


def test_onset_starts_nominal_and_fraction_of_time_limit() -> None:
    env = make_env(PENDULUM, schedule="onset:t=0.25", max_episode_steps=20)  # t = 5 steps
    target = env.unwrapped.list_tasks("test")[0]
    env.unwrapped.set_task(target)
    _, tasks = _run(env, 20)
    nominal = env.unwrapped.nominal_task()
    assert tasks[1:6] == [nominal] * 5 and tasks[6:] == [target] * 15


def test_new_base_task_is_respected_after_a_schedule_moved_away() -> None:
    env = make_env(PENDULUM, schedule="switch:t=2")
    base = env.unwrapped
    a, c = base.list_tasks("train")[0], base.list_tasks("train")[2]
    base.set_task(a)
    _run(env, 4)
    base.set_task(c)  # a loop sets the next episode's task explicitly
    _, tasks = _run(env, 1)
    assert tasks[0] == c


def test_wrap_fixed_is_identity_and_describe_lists_schedules() -> None:
    env = make_env(PENDULUM)
    assert wrap_schedule(env, "fixed") is env
    assert isinstance(wrap_schedule(env, "switch:t=3"), TaskSchedule)
    desc = describe_env(PENDULUM)
    assert desc["obs_dim"] == 3 and desc["act_dim"] == 1 and "switch:t=500" in desc["schedules"]
