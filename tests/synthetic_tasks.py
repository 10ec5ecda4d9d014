"""A synthetic family of tasks with hidden linear dynamics, for adaptation tests.

Every task ``T = (a, g)`` defines linear dynamics

    s' = s + dt * (A(a) s + B(g) a_t) + noise,   A(a) = A0 + a * A1,   B(g) = B0 diag(g)

with ``A0, A1, B0`` fixed by the family's seed (shared by every task) and the task
parameters hidden from the model: a drift scalar ``a`` and one gain ``g_j`` per action
dimension whose *sign* is random (a reversed motor). A single global model (MB) can only
learn the average effect of an action, which is close to zero; a model that adapts on a
few recent transitions can recover the sign and size of each gain. This is the
smallest setting where the paper's claim (Nagabandi, Clavera et al., ICLR 2019, Sec. 6:
adaptation cuts the K-step prediction error on unseen dynamics) is checkable in
seconds.

Train and held-out test tasks come from disjoint random streams (so no test task was
ever seen in training); ``make_test_tasks(..., out_of_range=True)`` draws gains whose
magnitude lies outside the training range, for extrapolation checks.

Shared by tests/test_grbal.py and tests/test_rebal.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from learn2adapt.data.trajectory_buffer import Episode, Task, TrajectoryBuffer
from learn2adapt.types import Window

#: Training range of the gain magnitudes |g_j| (sign is random); test out-of-range: [1.6, 2.0].
TRAIN_GAIN = (0.5, 1.5)
OUT_OF_RANGE_GAIN = (1.6, 2.0)
#: Training range of the drift scalar ``a``.
TRAIN_DRIFT = (-1.0, 1.0)


@dataclass
class LinearTaskFamily:
    """Linear dynamics whose matrices depend on a hidden task (see module docstring).

    Args:
        obs_dim: state size.
        act_dim: action size.
        dt: integration step (keeps per-step changes small, like a simulator).
        noise: standard deviation of additive process noise on ``s'``.
        seed: fixes the shared matrices ``A0, A1, B0``.
    """

    obs_dim: int = 4
    act_dim: int = 2
    dt: float = 0.1
    noise: float = 0.0
    seed: int = 0
    A0: np.ndarray = field(init=False, repr=False)
    A1: np.ndarray = field(init=False, repr=False)
    B0: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        d = self.obs_dim
        # A0: damped rotation (stable: eigenvalues with real part -0.5), so random-action
        # rollouts stay bounded; A1: a random perturbation, scaled to keep A(a) stable.
        skew = rng.normal(size=(d, d))
        skew = 0.5 * (skew - skew.T)
        self.A0 = (-0.5 * np.eye(d) + skew).astype(np.float64)
        self.A1 = (0.3 * rng.normal(size=(d, d)) / np.sqrt(d)).astype(np.float64)
        self.B0 = rng.normal(size=(d, self.act_dim)).astype(np.float64)

    # --- tasks ------------------------------------------------------------------------------
    def _tasks(self, n: int, rng: np.random.Generator, gain_range: tuple[float, float]) -> list[Task]:
        out = []
        for _ in range(n):
            sign = rng.choice([-1.0, 1.0], size=self.act_dim)
            gain = sign * rng.uniform(*gain_range, size=self.act_dim)
            out.append(
                {"drift": round(float(rng.uniform(*TRAIN_DRIFT)), 6), "gain": [round(float(g), 6) for g in gain]}
            )
        return out

    def sample_train_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """``n`` random training tasks."""
        return self._tasks(n, rng, TRAIN_GAIN)

    def make_test_tasks(self, n: int, seed: int = 12345, out_of_range: bool = False) -> list[Task]:
        """``n`` held-out tasks, from a random stream disjoint from training's.

        With ``out_of_range`` the gain magnitudes lie in :data:`OUT_OF_RANGE_GAIN`,
        outside the training range.
        """
        rng = np.random.default_rng([self.seed, 10_007, seed])
        return self._tasks(n, rng, OUT_OF_RANGE_GAIN if out_of_range else TRAIN_GAIN)

    def matrices(self, task: Task) -> tuple[np.ndarray, np.ndarray]:
        """``(A(a), B(g))`` of a task."""
        return self.A0 + task["drift"] * self.A1, self.B0 * np.asarray(task["gain"])[None, :]

    # --- dynamics -----------------------------------------------------------------------------
    def step(self, obs: np.ndarray, act: np.ndarray, task: Task, rng: np.random.Generator | None = None) -> np.ndarray:
        """Next state(s) under ``task``; ``obs (..., d)``, ``act (..., a)``."""
        A, B = self.matrices(task)
        nxt = obs + self.dt * (obs @ A.T + act @ B.T)
        if self.noise > 0:
            nxt = nxt + self.noise * (rng or np.random.default_rng()).normal(size=nxt.shape)
        return nxt

    def episode(self, tasks: Sequence[Task] | Task, length: int, rng: np.random.Generator) -> Episode:
        """One episode with uniform random actions in [-1, 1].

        ``tasks`` is one task for the whole episode, or one per step (a schedule of
        switches inside the episode).
        """
        schedule = [tasks] * length if isinstance(tasks, dict) else list(tasks)
        if len(schedule) != length:
            raise ValueError(f"got {len(schedule)} tasks for an episode of {length} steps")
        obs = np.zeros((length + 1, self.obs_dim))
        obs[0] = rng.normal(size=self.obs_dim)
        act = rng.uniform(-1.0, 1.0, size=(length, self.act_dim))
        for t in range(length):
            obs[t + 1] = self.step(obs[t], act[t], schedule[t], rng)
        f32 = lambda x: x.astype(np.float32)  # noqa: E731
        return Episode(
            f32(obs[:-1]), f32(act), f32(obs[1:]), np.zeros(length, np.float32), np.zeros(length, bool), schedule
        )

    def make_buffer(
        self,
        num_episodes: int,
        length: int,
        rng: np.random.Generator,
        tasks: Sequence[Task] | None = None,
    ) -> TrajectoryBuffer:
        """A buffer of ``num_episodes`` episodes, each under one task.

        Tasks cycle through ``tasks`` if given, else a fresh random training task is
        drawn per episode (the paper's "tasks resampled per episode").
        """
        buf = TrajectoryBuffer(self.obs_dim, self.act_dim, capacity=num_episodes * length)
        for i in range(num_episodes):
            task = tasks[i % len(tasks)] if tasks else self.sample_train_tasks(1, rng)[0]
            buf.add_episode(self.episode(task, length, rng))
        return buf

    def make_segments(
        self, tasks: Sequence[Task], per_task: int, length: int, rng: np.random.Generator, burn_in: int = 10
    ) -> Window:
        """``per_task`` segments of ``length`` consecutive transitions under each task.

        Each segment is the tail of a fresh episode of ``burn_in + length`` steps (so
        states are not all at the initial distribution). Arrays are ``(B, length, ...)``
        with ``B = len(tasks) * per_task``, grouped by task.
        """
        obs, act, nxt = [], [], []
        for task in tasks:
            for _ in range(per_task):
                ep = self.episode(task, burn_in + length, rng)
                obs.append(ep.obs[burn_in:])
                act.append(ep.act[burn_in:])
                nxt.append(ep.next_obs[burn_in:])
        return Window(*(torch.as_tensor(np.stack(x)) for x in (obs, act, nxt)))


def make_train_buffer(
    num_episodes: int = 60, length: int = 50, seed: int = 0, **family
) -> tuple[LinearTaskFamily, TrajectoryBuffer]:
    """Convenience: a family and a buffer of episodes under random training tasks."""
    fam = LinearTaskFamily(**family)
    return fam, fam.make_buffer(num_episodes, length, np.random.default_rng(seed))


def make_test_tasks(n: int = 8, seed: int = 12345, out_of_range: bool = False, **family) -> list[Task]:
    """Convenience: held-out tasks of the family with the given options."""
    return LinearTaskFamily(**family).make_test_tasks(n, seed, out_of_range)
