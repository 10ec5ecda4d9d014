"""The types every layer shares (the bottom layer: it imports nothing of ours).

* The callables a planner is given: a one-step model, a reward and a termination
  function, all batched over any leading dimensions.
* :class:`Window`: B windows of consecutive transitions, the one type for the M + K
  segments of meta-training and evaluation and for the last M transitions of each
  environment online.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

#: ``predict(obs[E, N, obs_dim], act[E, N, act_dim]) -> next_obs[E, N, obs_dim]``.
#: The leading E dimension lets each environment use its own adapted model.
PredictFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``reward_fn(obs[..., d], act[..., a], next_obs[..., d]) -> reward[...]``.
RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: ``termination_fn(obs, act, next_obs) -> bool[...]``.
TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AdaptedPredictor:
    """A one-step model with weights computed once per plan: ``forward(obs, act, params=params)``.

    What GrBAL, MB+DE and MOLe hand the planner (``params``: per-environment weights), and ReBAL
    (``params["context"]``: its recurrent state's term of the head). It is a :data:`PredictFn`, and it says what a plain
    closure hides: the method it runs (``forward``, a bound method of the model, the same object
    from plan to plan) and the tensors that change from plan to plan (``params``, ``(E, *shape)``
    per name). A CUDA graph can then record the rollout once over static copies of ``params``
    and replay it after copying each plan's weights in (:mod:`learn2adapt.planning.cuda_graph`).
    """

    forward: Callable[..., torch.Tensor]
    params: dict[str, torch.Tensor]

    def __call__(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.forward(obs, act, params=self.params)

    def with_params(self, params: dict[str, Any]) -> AdaptedPredictor:
        """The same model over other tensors of the same shapes (a graph's static copies)."""
        return AdaptedPredictor(self.forward, params)


def right_aligned_mask(count: torch.Tensor, length: int) -> torch.Tensor:
    """``mask[b, t]`` is True for the last ``count[b]`` of ``length`` rows: ``(B, length)`` bool."""
    return torch.arange(length, device=count.device)[None, :] >= (length - count)[:, None]


@dataclass
class Window:
    """B windows of L consecutive transitions, each within one episode (torch, one device).

    ``obs (B, L, obs_dim)``, ``act (B, L, act_dim)``, ``next_obs (B, L, obs_dim)``.
    ``count (B,)`` (int64) or None: only the last ``count[b]`` rows of window ``b`` are
    valid, the earlier ones are padding (the online window at an episode start, or a
    meta-training window whose past is cut short); None: every row is valid.
    """

    obs: torch.Tensor
    act: torch.Tensor
    next_obs: torch.Tensor
    count: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @property
    def length(self) -> int:
        return int(self.obs.shape[1])

    @property
    def mask(self) -> torch.Tensor:
        """``(B, L)`` bool, True for valid rows."""
        if self.count is None:
            return torch.ones(self.obs.shape[:2], dtype=torch.bool, device=self.obs.device)
        return right_aligned_mask(self.count, self.length)

    def rows(self, start: int, stop: int | None = None, count: torch.Tensor | None = None) -> Window:
        """Rows ``start:stop`` of every window (views), with ``count`` for the result."""
        sl = slice(start, stop)
        return Window(self.obs[:, sl], self.act[:, sl], self.next_obs[:, sl], count)
