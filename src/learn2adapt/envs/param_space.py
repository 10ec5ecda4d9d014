"""Train/test splits over scalar dynamics parameters (mass scale, damping scale, ...).

The peer benchmarks (CaDM, T-MCL) define a task as a few scalar multipliers of
nominal physical parameters, drawn from a training range and evaluated on disjoint
held-out intervals on either side of it. :class:`ParamSpace` holds those ranges and
implements the sampling/listing half of :class:`~learn2adapt.envs.task_env.TaskEnv`
for such families.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learn2adapt.envs.task_env import Task, TaskEnv, check_split

Interval = tuple[float, float]


@dataclass(frozen=True)
class ScaleParam:
    """One scalar task parameter.

    Attributes:
        name: key in the task dict.
        train: a continuous interval ``(lo, hi)`` or, with ``discrete=True``, a
            finite set of training values (CaDM's HalfCheetah uses a set).
        test: held-out intervals, each disjoint from the training range.
        discrete: ``train`` is a set of values rather than an interval.
        nominal: the value of the unmodified simulator.
        positive: values must be > 0 (otherwise >= 0: a scale of 0 disables a part). A test
            interval may be a single value ``(v, v)``.
    """

    name: str
    train: tuple[float, ...]
    test: tuple[Interval, ...]
    discrete: bool = False
    nominal: float = 1.0
    positive: bool = True

    def __post_init__(self) -> None:
        lo, hi = min(self.train), max(self.train)
        for a, b in self.test:
            if not (a <= b and (b < lo or a > hi)):
                raise ValueError(f"{self.name}: test interval {(a, b)} overlaps the training range {(lo, hi)}")

    def sample(self, split: str, rng: np.random.Generator) -> float:
        if split == "train":
            if self.discrete:
                return float(self.train[int(rng.integers(len(self.train)))])
            return float(rng.uniform(self.train[0], self.train[1]))
        a, b = self.test[int(rng.integers(len(self.test)))]
        return float(rng.uniform(a, b))

    def representatives(self, split: str) -> list[float]:
        """Training grid (set, or ends and middle of the interval); test interval middles."""
        if split == "train":
            if self.discrete:
                return [float(v) for v in self.train]
            lo, hi = self.train
            return [lo, round((lo + hi) / 2, 6), hi]
        return [round((a + b) / 2, 6) for a, b in self.test]

    def in_split(self, value: float, split: str) -> bool:
        if split == "train":
            if self.discrete:
                return any(abs(value - v) < 1e-9 for v in self.train)
            return self.train[0] <= value <= self.train[1]
        return any(a <= value <= b for a, b in self.test)


class ParamSpace:
    """Independent scalar parameters; a task is ``{name: value}`` for every parameter.

    Args:
        params: the parameters.
        test_listing: how ``list_tasks("test")`` combines the per-parameter interval
            middles: ``"product"`` (every combination) or ``"diagonal"`` (the k-th
            interval of every parameter together; for families whose parameters
            share their held-out intervals, so the list stays short).
    """

    def __init__(self, params: Sequence[ScaleParam], test_listing: str = "product") -> None:
        if test_listing not in ("product", "diagonal"):
            raise ValueError(f"test_listing must be 'product' or 'diagonal', got {test_listing!r}")
        self.params = tuple(params)
        self.test_listing = test_listing

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def nominal(self) -> Task:
        return {p.name: p.nominal for p in self.params}

    def sample(self, split: str, rng: np.random.Generator) -> Task:
        check_split(split)
        return {p.name: p.sample(split, rng) for p in self.params}

    def list(self, split: str) -> list[Task]:
        check_split(split)
        reps = [p.representatives(split) for p in self.params]
        if split == "test" and self.test_listing == "diagonal":
            combos: zip | itertools.product = zip(*reps)
        else:
            combos = itertools.product(*reps)
        return [dict(zip(self.names, c)) for c in combos]

    def split_of(self, task: Task) -> str | None:
        """ "train" if every parameter is in its training range, "test" if every one is held out."""
        for split in ("train", "test"):
            if all(p.in_split(float(task[p.name]), split) for p in self.params):
                return split
        return None

    def validate(self, task: Task) -> Task:
        """A clean copy of ``task`` (floats), or ``ValueError`` on missing/unknown keys."""
        if set(task) != set(self.names):
            raise ValueError(f"task {task!r} must have exactly the keys {self.names}")
        out = {}
        for p in self.params:
            name, value = p.name, float(task[p.name])
            if not np.isfinite(value) or value < 0 or (p.positive and value == 0):
                kind = "positive" if p.positive else "non-negative"
                raise ValueError(f"task parameter {name}={task[name]!r} must be a {kind} finite number")
            out[name] = value
        return out

    def describe(self) -> dict[str, object]:
        return {
            p.name: {
                "train": list(p.train),
                "train_kind": "set" if p.discrete else "interval",
                "test": [list(iv) for iv in p.test],
            }
            for p in self.params
        }


class ParamTaskEnv(TaskEnv):
    """A :class:`TaskEnv` whose tasks are the points of a :class:`ParamSpace`.

    Subclasses set the class attribute ``param_space`` and implement
    :meth:`_apply_task`, which writes the (validated) task into the simulator.
    """

    param_space: ParamSpace

    def sample_task(self, split: str, rng: np.random.Generator) -> Task:
        return self.param_space.sample(split, rng)

    def list_tasks(self, split: str) -> list[Task]:
        return self.param_space.list(split)

    def set_task(self, task: Task) -> None:
        clean = self.param_space.validate(task)
        self._apply_task(clean)
        self.task = clean

    def nominal_task(self) -> Task:
        """The task of the unmodified simulator (every scale 1)."""
        return self.param_space.nominal()

    def _apply_task(self, task: Task) -> None:
        raise NotImplementedError

    def describe_task_space(self) -> dict[str, object]:
        return {"parameters": self.param_space.describe(), **super().describe_task_space()}
