"""Random shooting MPC, the planner of the paper's simulated experiments.

Nagabandi et al., "Neural Network Dynamics for Model-Based Deep RL with Model-Free
Fine-Tuning", ICRA 2018; Nagabandi, Clavera et al., ICLR 2019 (GrBAL/ReBAL, N=500, H=10).
"""

from __future__ import annotations

import torch

from learn2adapt.planning.base import Planner
from learn2adapt.types import PredictFn, RewardFn, TerminationFn


class RandomShooting(Planner):
    """Sample N uniform action sequences per environment, execute the best one's first action.

    Stateless between calls: :meth:`reset` has nothing to forget. Under a :attr:`deadline`, N
    shrinks to the candidates the last plan's time per candidate says fit in the time left.
    """

    def _candidates_that_fit(self) -> int:
        if self.deadline is None or self._candidate_seconds <= 0:
            return self.num_candidates
        left = self.deadline - self._now()
        return int(min(self.num_candidates, max(1, 0.9 * left / self._candidate_seconds)))  # 10% to spare

    _candidate_seconds = 0.0  # the last plan's seconds per candidate (under a deadline)

    def sample(self, num_envs: int, count: int | None = None) -> torch.Tensor:
        """Uniform candidates ``(E, count, H, act_dim)`` in the bounds (``count``: N), one generator per environment.

        Returns a reused buffer (overwritten by the next call).
        """
        self._make_generators(num_envs)
        full = (num_envs, self.num_candidates, self.horizon, self.act_dim)
        actions = self._buffer("actions", full)[:, : count or self.num_candidates]
        shape = actions.shape
        for e in range(num_envs):
            torch.rand(shape[1:], generator=self.generators[e], device=self.device, out=actions[e])
        # In place: u * (high - low) + low.
        actions.mul_(self.action_high - self.action_low).add_(self.action_low)
        return actions

    def _optimise(
        self, predict: PredictFn, reward_fn: RewardFn, obs: torch.Tensor, termination_fn: TerminationFn | None
    ) -> torch.Tensor:
        """The search of :meth:`Planner.plan`."""
        num_envs = obs.shape[0]
        count = self._candidates_that_fit()
        start = self._now() if self.deadline is not None else 0.0
        actions = self.sample(num_envs, count)
        returns = self.evaluate(predict, reward_fn, obs, actions, termination_fn)
        if self.deadline is not None:
            self._candidate_seconds = (self._now() - start) / count
        self.last_work = count
        best = returns.argmax(dim=1)
        first = actions[torch.arange(num_envs, device=self.device), best, 0]
        ok = torch.isfinite(returns.gather(1, best.unsqueeze(1)).squeeze(1))
        return self._fallback(first.clone(), ok)
