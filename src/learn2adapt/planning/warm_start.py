"""Planners that start each step from the previous step's solution (CEM, iCEM, MPPI)."""

from __future__ import annotations

import torch

from learn2adapt.planning.base import Planner


class WarmStartPlanner(Planner):
    """A planner that keeps a per-environment mean action sequence between steps.

    After each plan the mean is shifted one step forward (the executed action is
    dropped, the last step restarts at the action midpoint), so the next step
    starts from the previous solution; :meth:`reset` restarts the masked
    environments from the midpoint at episode starts.
    """

    _mean: torch.Tensor | None = None

    def _own_mean(self, num_envs: int) -> torch.Tensor:
        """The warm-start mean ``(E, H, act_dim)`` itself (made at the midpoint for new slots)."""
        if self._mean is None or self._mean.shape[0] != num_envs:
            self._mean = self.action_mid.expand(num_envs, self.horizon, self.act_dim).clone()
        return self._mean

    def _warm_mean(self, num_envs: int) -> torch.Tensor:
        """A copy of the warm-start mean ``(E, H, act_dim)`` (midpoint for new slots)."""
        return self._own_mean(num_envs).clone()

    def _store_shifted(self, mean: torch.Tensor) -> None:
        """Keep ``mean`` shifted by one step as the next call's starting point (in place, where the
        plan read it: a recorded plan then carries it to the next replay)."""
        if self._mean is None or self._mean.shape != mean.shape:
            self._mean = torch.empty_like(mean)
        elif mean.data_ptr() == self._mean.data_ptr():
            mean = mean.clone()
        self._mean[:, :-1] = mean[:, 1:]
        self._mean[:, -1] = self.action_mid

    def _capture_state(self, num_envs: int) -> list[torch.Tensor]:
        return [*super()._capture_state(num_envs), self._own_mean(num_envs)]

    def reset(self, env_mask: torch.Tensor | None = None) -> None:
        """Restart the warm-start mean of the masked environments (all if None) at the midpoint."""
        if self._mean is None:
            return
        idx = self._mask_indices(env_mask, self._mean.shape[0])
        self._mean[idx] = self.action_mid
