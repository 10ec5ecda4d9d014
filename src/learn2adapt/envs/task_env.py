"""The task interface shared by every learn2adapt environment.

A *task* is one setting of the hidden dynamics parameters (a disabled joint,
a mass scale, a terrain...). It is a plain JSON-serialisable ``dict`` so runs
can record exactly what they saw. Environments expose, on ``env.unwrapped``:

- ``sample_task(split, rng)``: a task from the "train" or "test" split;
- ``list_tasks(split)``: an enumerable, representative list of that split;
- ``nominal_task()``: the unmodified robot (a controller check without any change of dynamics);
- ``set_task(task)``: takes effect from the next ``step``, mid-episode included;
- ``task``: the task in force, also reported as ``info["task"]`` every step;
- ``reward_fn(obs, act, next_obs)``: batched torch reward equal to ``step``'s;
- ``termination_fn(obs, act, next_obs)``: batched torch termination flags.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

Task = dict[str, Any]
SPLITS = ("train", "test")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown task split {split!r}: use one of {SPLITS}")


class TaskEnv(ABC):
    """Mixin for environments whose dynamics depend on a settable task.

    Subclasses implement the abstract methods; ``reward_fn`` must agree with the
    reward ``step`` returns (the planner computes rewards from observations).
    """

    #: Task in force; subclasses set it in ``__init__`` via ``set_task``.
    task: Task

    @abstractmethod
    def sample_task(self, split: str, rng: np.random.Generator) -> Task:
        """Draw a task from ``split`` ("train" or "test")."""

    @abstractmethod
    def list_tasks(self, split: str) -> list[Task]:
        """A representative, finite list of the tasks of ``split``."""

    @abstractmethod
    def nominal_task(self) -> Task:
        """The task of the unmodified system."""

    @abstractmethod
    def set_task(self, task: Task) -> None:
        """Switch the dynamics to ``task``; effective from the next step."""

    @abstractmethod
    def reward_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Batched reward over arbitrary leading dims: ``(...,)`` from ``(..., d)``."""

    def termination_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Batched termination flags; by default never terminates."""
        return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)

    def training_task(self, rng: np.random.Generator, nominal: bool = False) -> Task:
        """The task of a training episode: drawn from the train split, or the nominal one (``nominal``)."""
        return self.nominal_task() if nominal else self.sample_task("train", rng)

    def test_tasks(self, nominal: bool = False) -> list[Task]:
        """The tasks an evaluation runs: the test split, or the nominal task alone (``nominal``)."""
        return [self.nominal_task()] if nominal else self.list_tasks("test")

    def describe_task_space(self) -> dict[str, Any]:
        """Human-readable summary of the splits (for ``learn2adapt envs``)."""
        return {split: self.list_tasks(split) for split in SPLITS}
