"""Any Gymnasium environment as a learn2adapt task environment, without editing the library.

:class:`GymTaskEnv` wraps an environment that ``gymnasium.make`` builds (``Hopper-v5``, or a
user's ``my_pkg.envs:Robot-v0``) and gives it the :class:`~learn2adapt.envs.task_env.TaskEnv`
interface every loop of ours uses through ``env.unwrapped``:

- its tasks come from a declarative task space over the compiled MuJoCo model
  (:mod:`learn2adapt.envs.task_space`), or, with none given, it has only the nominal task
  (adaptation then tracks what the model has not learned, not a change of task);
- its batched reward and termination, which Gymnasium's environments do not have, are a
  user's functions (``module:function``, batched torch ``(obs, act, next_obs) -> (...,)``),
  or, with ``reward=learned`` (:data:`LEARNED`), a network the training loop fits beside the
  dynamics model (:mod:`learn2adapt.models.reward`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from learn2adapt.envs.task_env import SPLITS, Task, TaskEnv, check_split
from learn2adapt.errors import ConfigError

BatchedFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: The ``reward`` / ``termination`` value that asks for a learned one instead of a function.
LEARNED = "learned"


def load_function(spec: str, what: str) -> BatchedFn:
    """Import ``module:function`` (one line naming the problem if it cannot be imported)."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"{what}={spec!r}: give module:function (e.g. my_robot.rewards:reward) or {LEARNED}")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise ConfigError(f"{what}={spec!r}: cannot import {module!r} ({e}); is its package installed?") from None
    except AttributeError:
        raise ConfigError(f"{what}={spec!r}: module {module!r} has no {name!r}") from None
    if not callable(fn):
        raise ConfigError(f"{what}={spec!r} is not a function")
    return fn


def check_batched(fn: BatchedFn, spec: str, what: str, obs_dim: int, act_dim: int) -> None:
    """Call ``fn`` on a batch of shape ``(2, 3, d)`` and refuse a result that is not ``(2, 3)``."""
    obs, act = torch.zeros(2, 3, obs_dim), torch.zeros(2, 3, act_dim)
    try:
        out = fn(obs, act, obs)
    except Exception as e:  # noqa: BLE001  (a user's function: any failure is their input's)
        raise ConfigError(f"{what}={spec!r} fails on a batch of shape (2, 3, d): {type(e).__name__}: {e}") from None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape != (2, 3):
        got = f"shape {shape}" if shape is not None else type(out).__name__
        raise ConfigError(
            f"{what}={spec!r} must return a torch tensor of shape (...,) from (..., d) inputs: "
            f"got {got} for inputs of shape (2, 3, d)"
        )


def mujoco_model(env: gym.Env) -> Any:
    """The compiled ``MjModel`` of a Gymnasium MuJoCo environment, or ``None``."""
    model = getattr(env.unwrapped, "model", None)
    try:
        import mujoco  # noqa: PLC0415  (only MuJoCo environments need it)
    except ImportError:  # pragma: no cover
        return None
    return model if isinstance(model, mujoco.MjModel) else None


class GymTaskEnv(gym.Wrapper, TaskEnv):
    """A Gymnasium environment with tasks (a task space, or only the nominal one) and batched functions.

    Its ``unwrapped`` is the wrapper itself, so the loops' ``env.unwrapped.set_task`` and
    ``env.unwrapped.reward_fn`` reach it; the wrapped environment is ``self.env``.

    Args:
        env: what ``gymnasium.make`` returned (its time limit inside).
        task_space: parameter strings of a MuJoCo model's task space (empty: the nominal task only).
        reward: ``module:function`` of the batched reward; ``"learned"`` or ``""``: none here
            (the run learns one, or trains model-free).
        termination: ``module:function`` of the batched termination flags; ``"learned"`` or ``""``:
            none here (learned, or never).
    """

    def __init__(self, env: gym.Env, task_space: Sequence[str] = (), reward: str = "", termination: str = "") -> None:
        super().__init__(env)
        if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
            raise ConfigError(f"{env.spec.id if env.spec else env}: learn2adapt needs a flat Box observation space")
        if not isinstance(env.action_space, gym.spaces.Box) or len(env.action_space.shape) != 1:
            raise ConfigError(
                f"{env.spec.id if env.spec else env}: learn2adapt plans continuous actions (a flat Box action space)"
            )
        self.space: Any = None
        if task_space:
            model = mujoco_model(env)
            if model is None:
                raise ConfigError(
                    "task_space edits a MuJoCo model, and this environment is not MuJoCo: implement the "
                    "TaskEnv protocol in its package instead (docs/your-robot.md)"
                )
            from learn2adapt.envs.task_space import ModelTaskSpace  # noqa: PLC0415

            self.space = ModelTaskSpace(model, task_space)
        dims = (env.observation_space.shape[0], env.action_space.shape[0])
        self._reward = self._user_function(reward, "reward", *dims)
        self._termination = self._user_function(termination, "termination", *dims)
        self.task: Task = {}
        self.set_task(self.nominal_task())

    @staticmethod
    def _user_function(spec: str, what: str, obs_dim: int, act_dim: int) -> BatchedFn | None:
        if not spec or spec == LEARNED:
            return None
        fn = load_function(spec, what)
        check_batched(fn, spec, what, obs_dim, act_dim)
        return fn

    @property
    def unwrapped(self) -> GymTaskEnv:
        return self

    # --- TaskEnv ------------------------------------------------------------------------
    def sample_task(self, split: str, rng: np.random.Generator) -> Task:
        check_split(split)
        return self.space.space.sample(split, rng) if self.space else {}

    def list_tasks(self, split: str) -> list[Task]:
        check_split(split)
        return self.space.space.list(split) if self.space else [{}]

    def nominal_task(self) -> Task:
        return self.space.space.nominal() if self.space else {}

    def set_task(self, task: Task) -> None:
        clean = self.space.space.validate(task) if self.space else self._no_task(task)
        if self.space:
            self.space.apply(clean)
        self.task = clean

    @staticmethod
    def _no_task(task: Task) -> Task:
        if task:
            raise ValueError(f"task {task!r}: this environment has no task space, only the nominal task {{}}")
        return {}

    def reward_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        if self._reward is None:
            raise ConfigError(f"this environment has no batched reward: set reward=module:function or {LEARNED}")
        return self._reward(obs, act, next_obs)

    def termination_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        if self._termination is None:
            return super().termination_fn(obs, act, next_obs)
        return self._termination(obs, act, next_obs).bool()

    def describe_task_space(self) -> dict[str, Any]:
        extra = {"parameters": self.space.describe()} if self.space else {}
        return {**extra, **{split: self.list_tasks(split) for split in SPLITS}}

    # --- stepping -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        info["task"] = dict(self.task)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["task"] = dict(self.task)
        return obs, reward, terminated, truncated, info
