"""What every MPC planner implements.

Planners know nothing of models: they get a ``predict`` callable and a batched
reward function, and plan for ``E`` environments at once.

Shapes: ``E`` environments, ``N`` candidate action sequences, horizon ``H``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional

import torch

#: ``predict(obs[E, N, obs_dim], act[E, N, act_dim]) -> next_obs[E, N, obs_dim]``.
#: The leading E dimension lets each environment use its own adapted model.
PredictFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``reward_fn(obs[..., d], act[..., a], next_obs[..., d]) -> reward[...]``.
RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: ``termination_fn(obs, act, next_obs) -> bool[...]``.
TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Planner(ABC):
    """Model-predictive planner over action sequences of length ``horizon``.

    Args:
        action_low: lower action bounds, shape ``(act_dim,)``.
        action_high: upper action bounds, shape ``(act_dim,)``.
        horizon: planning horizon H.
        num_candidates: candidate sequences N per environment (per iteration).
        device: torch device for sampling.
        seed: seed of the planner's own generator (reproducible plans).
    """

    def __init__(
        self,
        action_low: torch.Tensor,
        action_high: torch.Tensor,
        horizon: int,
        num_candidates: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if horizon < 1 or num_candidates < 1:
            raise ValueError("planner horizon and num_candidates must be >= 1")
        self.device = torch.device(device)
        self.action_low = torch.as_tensor(action_low, dtype=torch.float32, device=self.device)
        self.action_high = torch.as_tensor(action_high, dtype=torch.float32, device=self.device)
        self.act_dim = int(self.action_low.shape[-1])
        self.horizon = int(horizon)
        self.num_candidates = int(num_candidates)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def reset(self, env_mask: Optional[torch.Tensor] = None) -> None:
        """Forget warm-start state for the environments in ``env_mask`` (all if None).

        Called at episode starts. Stateless planners need not override it.
        """

    @abstractmethod
    def plan(
        self,
        predict: PredictFn,
        reward_fn: RewardFn,
        obs: torch.Tensor,
        termination_fn: Optional[TerminationFn] = None,
    ) -> torch.Tensor:
        """Return the first action of the best plan for each environment.

        Args:
            predict: batched one-step model, see :data:`PredictFn`.
            reward_fn: batched reward, see :data:`RewardFn`.
            obs: current observations, shape ``(E, obs_dim)``.
            termination_fn: optional; rewards after a predicted termination count 0.

        Returns:
            Actions of shape ``(E, act_dim)`` within the action bounds.
        """
