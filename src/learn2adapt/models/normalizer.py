"""Normalisation of observations, actions and state changes.

Statistics are fitted on the whole aggregated dataset every iteration and used
identically at train and run time (the official code recomputed them from the
newest data only: a defect we avoid).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Standard deviations below this are treated as constant dimensions: dividing by
#: them would blow noise up, so they are normalised with a unit scale instead.
MIN_STD = 1e-6


class Normalizer(nn.Module):
    """Mean/std statistics for ``obs``, ``act`` and ``delta = next_obs - obs``.

    Registered as buffers so they travel with a model's ``state_dict``.
    """

    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    act_mean: torch.Tensor
    act_std: torch.Tensor
    delta_mean: torch.Tensor
    delta_std: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        for name, dim in (("obs", obs_dim), ("act", act_dim), ("delta", obs_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    def _stats(self, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.asarray(x, np.float64)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std = np.where(std < MIN_STD, 1.0, std)
        device = self.obs_mean.device
        return (
            torch.as_tensor(mean, dtype=torch.float32, device=device),
            torch.as_tensor(std, dtype=torch.float32, device=device),
        )

    def fit(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        """Fit on all stored transitions."""
        if len(obs) == 0:
            raise ValueError("cannot fit normalisation statistics on an empty dataset")
        for name, x in (("obs", obs), ("act", act), ("delta", np.asarray(next_obs) - np.asarray(obs))):
            mean, std = self._stats(x)
            getattr(self, f"{name}_mean").copy_(mean)
            getattr(self, f"{name}_std").copy_(std)

    def norm_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def norm_act(self, act: torch.Tensor) -> torch.Tensor:
        return (act - self.act_mean) / self.act_std

    def norm_inputs(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """A dynamics model's input: normalised state and action, concatenated."""
        return torch.cat([self.norm_obs(obs), self.norm_act(act)], dim=-1)

    def norm_delta(self, delta: torch.Tensor) -> torch.Tensor:
        return (delta - self.delta_mean) / self.delta_std

    def denorm_delta(self, delta_n: torch.Tensor) -> torch.Tensor:
        return delta_n * self.delta_std + self.delta_mean

    def denorm_obs(self, obs_n: torch.Tensor) -> torch.Tensor:
        return obs_n * self.obs_std + self.obs_mean
