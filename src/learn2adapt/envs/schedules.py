"""Task schedules: dynamics that change *inside* an episode, as a Gymnasium wrapper.

A schedule decides, before every step, which task is in force. The task set on
``env.unwrapped`` before ``reset`` (by a training or evaluation loop) is the
episode's *base* task ``A``; schedules move away from it and back:

===============================  ==========================================================
spec                             meaning
===============================  ==========================================================
``fixed``                        ``A`` for the whole episode (no change)
``switch:t=500``                 ``A`` for steps ``0..t-1``, then another task ``B``
``random:rate=0.01``             at every step, with probability ``rate``, a new task
``recurring:period=200``         ``A`` for ``period`` steps, ``B`` for ``period``, ``A``...
``recurring:period=200,tasks=3`` ``A``, ``B``, ``C``, ``A``, ...: a return after several others
``onset:t=500``                  the nominal (unperturbed) dynamics, then ``A`` from ``t``
``sequence:A=200,B=40,A=150``    the named tasks in this order, each for its number of steps
===============================  ==========================================================

In ``sequence`` the first name is the episode's base task ``A``; every other name stands for
one task drawn per episode (distinct names, distinct tasks) from ``pool`` (default ``test``:
the held-out tasks). After the last segment its task stays in force. A name may come back
any number of times, in any order, with any segment lengths: the pattern of a robot's day.

Options shared by the switching schedules: ``pool=all|train|test`` (where ``B`` is
drawn from: that split's ``list_tasks``, minus ``A``; default ``all``). A step
``t`` below 1 (e.g. ``t=0.5``) is a fraction of the episode's time limit.

Paper presets (Nagabandi et al. 2019, Sec. 6):

- ``paper-cheetah-switch``: HalfCheetah disabled joint, the disabled joint
  changes mid-rollout (``switch:t=0.5,pool=all``);
- ``paper-ant-crippled``: Ant normal -> crippled leg mid-rollout (``onset:t=0.5``).

The step at which a change happens is the first step simulated under the new
task; ``info["task"]`` reports the task in force at every step.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from learn2adapt.envs.task_env import Task
from learn2adapt.errors import ConfigError, UnknownName

POOLS = ("all", "train", "test")


def _key(task: Task) -> str:
    return json.dumps(task, sort_keys=True)


class Schedule(ABC):
    """Which task is in force at each step of an episode.

    :meth:`start` is called at every reset; :meth:`task_at` before every step.
    """

    #: Spec string this schedule was built from (for logs and ``describe_all``).
    spec: str = ""

    def start(self, base: Task, env: Any, rng: np.random.Generator, horizon: int | None) -> Task:
        """Begin an episode whose base task is ``base``; returns the task for step 0.

        Args:
            base: the task set before the reset.
            env: the unwrapped :class:`~learn2adapt.envs.task_env.TaskEnv`.
            rng: the episode's random stream (seeded from the reset seed).
            horizon: the episode's time limit, if known (for fractional steps).
        """
        return base

    @abstractmethod
    def task_at(self, t: int) -> Task | None:
        """The task for step ``t`` if it changes there, else ``None``."""


def _positive(value: Any, name: str) -> float:
    """``value`` as a positive number, checked when the schedule is built (before any episode runs)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value == value:
        raise ConfigError(f"schedule option {name}={value!r} must be a number")
    if value <= 0:
        raise ConfigError(f"schedule option {name}={value} must be positive")
    if value >= 1 and value != int(value):
        raise ConfigError(f"schedule option {name}={value} must be an integer number of steps or a fraction < 1")
    return float(value)


def _steps(value: float, horizon: int | None, name: str) -> int:
    """A step count, or a fraction (< 1) of ``horizon``."""
    if value <= 0:
        raise ConfigError(f"schedule option {name}={value} must be positive")
    if value < 1:
        if horizon is None:
            raise ConfigError(f"{name}={value} is a fraction of the time limit, but the environment has none")
        return max(1, int(round(value * horizon)))
    if value != int(value):
        raise ConfigError(f"schedule option {name}={value} must be an integer number of steps or a fraction < 1")
    return int(value)


class _PoolSchedule(Schedule):
    """Shared by schedules that draw other tasks from a split's list."""

    def __init__(self, pool: str = "all") -> None:
        if pool not in POOLS:
            raise ConfigError(f"schedule option pool={pool!r} must be one of {POOLS}")
        self.pool = pool
        self._pool_env: Any = None  # the env whose tasks _pool_tasks lists
        self._pool_tasks: dict[Any, Task] = {}

    def _begin(self, base: Task, env: Any, rng: np.random.Generator) -> None:
        if self._pool_env is not env:  # the pool is fixed per env: list it once
            splits = ("train", "test") if self.pool == "all" else (self.pool,)
            self._pool_tasks = {_key(t): t for split in splits for t in env.list_tasks(split)}
            self._pool_env = env
        self._others = [t for t in self._pool_tasks.values() if t != base]
        if not self._others:
            raise ConfigError(f"no task other than {base} in pool {self.pool!r} to switch to")
        self._rng = rng
        self._base = base

    def _draw(self, exclude: Task) -> Task:
        choices = [t for t in self._others + [self._base] if t != exclude]
        return choices[int(self._rng.integers(len(choices)))]


class Fixed(Schedule):
    """The base task for the whole episode."""

    def task_at(self, t: int) -> Task | None:
        return None


class Switch(_PoolSchedule):
    """Base task until step ``t``, then one other task (drawn per episode) to the end."""

    def __init__(self, t: float, pool: str = "all") -> None:
        super().__init__(pool)
        self.t = _positive(t, "t")

    def start(self, base: Task, env: Any, rng: np.random.Generator, horizon: int | None) -> Task:
        self._begin(base, env, rng)
        self._at = _steps(self.t, horizon, "t")
        self._target = self._draw(base)
        return base

    def task_at(self, t: int) -> Task | None:
        return self._target if t == self._at else None


class RandomSwitches(_PoolSchedule):
    """At every step, with probability ``rate``, switch to a different task."""

    def __init__(self, rate: float, pool: str = "all") -> None:
        super().__init__(pool)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ConfigError(f"schedule option rate={rate!r} must be a number in (0, 1]")
        self.rate = rate

    def start(self, base: Task, env: Any, rng: np.random.Generator, horizon: int | None) -> Task:
        self._begin(base, env, rng)
        self._current = base
        self._next = self._wait(0)
        return base

    def _wait(self, t: int) -> int:
        # Steps to the next switch are geometric: the same law as a per-step coin flip,
        # with one draw per switch instead of one per step.
        return t + int(self._rng.geometric(self.rate))

    def task_at(self, t: int) -> Task | None:
        if t != self._next:
            return None
        self._next = self._wait(t)
        self._current = self._draw(self._current)
        return self._current


class Recurring(_PoolSchedule):
    """``A`` for ``period`` steps, then ``B``, ... (``tasks`` distinct tasks drawn per episode), then ``A`` again."""

    def __init__(self, period: float, pool: str = "all", tasks: float = 2) -> None:
        super().__init__(pool)
        self.period = _positive(period, "period")
        if tasks != int(tasks) or tasks < 2:
            raise ConfigError(f"schedule option tasks={tasks} must be an integer >= 2")
        self.tasks = int(tasks)

    def start(self, base: Task, env: Any, rng: np.random.Generator, horizon: int | None) -> Task:
        self._begin(base, env, rng)
        if len(self._others) < self.tasks - 1:
            raise ConfigError(
                f"recurring:tasks={self.tasks} needs {self.tasks - 1} tasks besides {base} in pool {self.pool!r}, "
                f"which has {len(self._others)}"
            )
        self._every = _steps(self.period, horizon, "period")
        cycle = [base, self._draw(base)]
        while len(cycle) < self.tasks:  # the others drawn without replacement
            rest = [t for t in self._others if t not in cycle]
            cycle.append(rest[int(self._rng.integers(len(rest)))])
        self._cycle = tuple(cycle)
        return base

    def task_at(self, t: int) -> Task | None:
        if t == 0 or t % self._every:
            return None
        return self._cycle[(t // self._every) % self.tasks]


class TaskSequence(_PoolSchedule):
    """Named tasks in a given order and for given lengths, e.g. ``A=200,B=40,A=150,C=100``."""

    def __init__(self, segments: list[tuple[str, Any]], pool: str = "test") -> None:
        super().__init__(pool)
        if len(segments) < 2:
            raise ConfigError("schedule sequence needs at least two segments, e.g. sequence:A=200,B=40,A=150")
        for (name, _), (following, _) in zip(segments, segments[1:]):
            if name == following:
                raise ConfigError(f"schedule sequence: {name} follows itself; merge the two segments into one")
        for name, length in segments:
            if not name.isidentifier():
                raise ConfigError(f"schedule sequence: task name {name!r} must be a name such as A, B or slow")
            _positive(length, f"{name} (its length)")
        self.segments = [(name, float(length)) for name, length in segments]
        self.names = list(dict.fromkeys(name for name, _ in segments))

    def start(self, base: Task, env: Any, rng: np.random.Generator, horizon: int | None) -> Task:
        self._begin(base, env, rng)
        need = len(self.names) - 1
        if len(self._others) < need:
            raise ConfigError(
                f"schedule sequence names {len(self.names)} tasks ({', '.join(self.names)}) but pool "
                f"{self.pool!r} has {len(self._others)} besides the episode's own"
            )
        picks = self._rng.choice(len(self._others), size=need, replace=False)
        task_of = dict(zip(self.names, [base, *(self._others[int(i)] for i in picks)]))
        self._changes: dict[int, Task] = {}
        t = 0
        for i, (name, length) in enumerate(self.segments):
            if i:
                self._changes[t] = task_of[name]
            t += _steps(length, horizon, f"{name} (its length)")
        return base

    def task_at(self, t: int) -> Task | None:
        return self._changes.get(t)


class Onset(Schedule):
    """Nominal (unperturbed) dynamics until step ``t``, then the base task."""

    def __init__(self, t: float) -> None:
        self.t = _positive(t, "t")

    def start(self, base: Task, env: Any, rng: np.random.Generator, horizon: int | None) -> Task:
        if not hasattr(env, "nominal_task"):
            raise ConfigError(f"{type(env).__name__} has no nominal task; the onset schedule needs one")
        self._at = _steps(self.t, horizon, "t")
        self._base = base
        return env.nominal_task()

    def task_at(self, t: int) -> Task | None:
        return self._base if t == self._at else None


@dataclass(frozen=True)
class ScheduleKind:
    """A schedule constructor and its documentation."""

    name: str
    factory: Callable[..., Schedule]
    example: str
    help: str


KINDS: dict[str, ScheduleKind] = {
    k.name: k
    for k in (
        ScheduleKind("fixed", Fixed, "fixed", "the episode's task throughout"),
        ScheduleKind("switch", Switch, "switch:t=500", "switch to another task at step t (pool=all|train|test)"),
        ScheduleKind(
            "random", RandomSwitches, "random:rate=0.01", "switch to a random task with probability rate per step"
        ),
        ScheduleKind(
            "recurring",
            Recurring,
            "recurring:period=200",
            "A -> B -> A ... every period steps (tasks=3: A -> B -> C -> A ...)",
        ),
        ScheduleKind("onset", Onset, "onset:t=500", "nominal dynamics, then the episode's task from step t"),
        ScheduleKind(
            "sequence",
            TaskSequence,
            "sequence:A=200,B=40,A=150,C=100",
            "named tasks in this order and for these steps; A is the episode's, the others drawn (pool=test)",
        ),
    )
}

#: Paper presets: name -> (spec, ids they are meant for).
PRESETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "paper-cheetah-switch": ("switch:t=0.5,pool=all", ("learn2adapt/HalfCheetahDisabledJoint-v0",)),
    "paper-ant-crippled": ("onset:t=0.5", ("learn2adapt/AntCrippledLeg-v0",)),
}


def _parse_value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def parse_schedule(spec: str) -> Schedule:
    """Build a :class:`Schedule` from a spec such as ``"switch:t=500,pool=test"``.

    Raises:
        ValueError: unknown kind or option, or a malformed spec (message lists the kinds).
    """
    text = spec.strip()
    if text in PRESETS:
        sched = parse_schedule(PRESETS[text][0])
        sched.spec = text
        return sched
    name, _, rest = text.partition(":")
    kind = KINDS.get(name)
    if kind is None:
        raise UnknownName(f"unknown schedule {name!r}; available: {', '.join([*KINDS, *PRESETS])}")
    options: dict[str, Any] = {}
    segments: list[tuple[str, Any]] = []  # sequence's NAME=STEPS, in order (names repeat)
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ConfigError(f"schedule option {item!r} in {spec!r} must be key=value (e.g. {kind.example})")
        if kind.factory is TaskSequence and key != "pool":
            segments.append((key, _parse_value(value.strip())))
            continue
        if key in options:
            raise ConfigError(f"schedule option {key} is given twice in {spec!r}")
        options[key] = _parse_value(value.strip())
    if kind.factory is TaskSequence:
        options["segments"] = segments
    try:
        sched = kind.factory(**options)
    except TypeError:
        raise ConfigError(f"bad options {options} for schedule {name!r}; e.g. {kind.example}") from None
    sched.spec = text
    return sched


def list_schedules() -> list[dict[str, str]]:
    """Every schedule kind and preset: ``{"name", "example", "help"}``."""
    out = [{"name": k.name, "example": k.example, "help": k.help} for k in KINDS.values()]
    out += [
        {"name": name, "example": name, "help": f"paper preset = {spec} (for {', '.join(ids)})"}
        for name, (spec, ids) in PRESETS.items()
    ]
    return out


def schedules_for(env_id: str) -> list[str]:
    """Schedule examples usable with ``env_id`` (the generic kinds and its presets)."""
    return [k.example for k in KINDS.values()] + [name for name, (_, ids) in PRESETS.items() if env_id in ids]


class TaskSchedule(gym.Wrapper):
    """Changes the task of the wrapped :class:`TaskEnv` during episodes, per a schedule.

    The base task of an episode is the one in force at ``reset`` (set it on
    ``env.unwrapped`` before resetting). If the schedule moved away from it and no one
    set another since, the next reset restores it, so every episode starts from the
    same base. The schedule's randomness comes from the reset seed.

    Args:
        env: a learn2adapt environment (possibly wrapped, e.g. in a time limit).
        schedule: a :class:`Schedule` or a spec string (see :func:`parse_schedule`).
    """

    def __init__(self, env: gym.Env, schedule: Schedule | str) -> None:
        super().__init__(env)
        self.schedule = parse_schedule(schedule) if isinstance(schedule, str) else schedule
        self._rng = np.random.default_rng()
        self._base: Task | None = None
        self._last_set: Task | None = None
        self._t = 0

    def _set(self, task: Task) -> None:
        self.env.unwrapped.set_task(task)
        self._last_set = self.env.unwrapped.task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        base_env = self.env.unwrapped
        current = base_env.task
        if self._last_set is not None and self._base is not None and current == self._last_set:
            current = self._base  # the schedule moved away from the base task: restore it
        self._base = dict(current)
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), 0x5C4ED])
        horizon = self.env.spec.max_episode_steps if self.env.spec is not None else None
        first = self.schedule.start(self._base, base_env, self._rng, horizon)
        self._set(first)
        self._t = 0
        obs, info = self.env.reset(seed=seed, options=options)
        info["task"] = dict(base_env.task)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        task = self.schedule.task_at(self._t)
        if task is not None:
            self._set(task)
        self._t += 1
        return self.env.step(action)


def wrap_schedule(env: gym.Env, spec: str | Schedule) -> gym.Env:
    """``env`` under the schedule ``spec`` (``"fixed"``: returned unwrapped)."""
    if isinstance(spec, str) and spec.strip() in ("", "fixed"):
        return env
    return TaskSchedule(env, spec)
