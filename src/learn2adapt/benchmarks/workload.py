"""The synthetic inputs the benchmarks time: a HalfCheetah-like reward and recent transitions."""

from __future__ import annotations

import torch

from learn2adapt.types import RewardFn, Window


def cheetah_like_reward(velocity_index: int = 8, ctrl_cost: float = 0.1) -> RewardFn:
    """Forward velocity of the next observation minus a control cost (HalfCheetah-v5 form).

    The velocity index is clipped to the observation size, so tiny test sizes work too.
    """

    def reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return next_obs[..., min(velocity_index, next_obs.shape[-1] - 1)] - ctrl_cost * act.square().sum(-1)

    return reward


def random_recent(
    num_envs: int, past: int, obs_dim: int, act_dim: int, generator: torch.Generator, device: str | torch.device = "cpu"
) -> Window:
    """``past`` full windows of random transitions per environment (actions in [-1, 1]), on ``device``."""
    return Window(
        torch.randn(num_envs, past, obs_dim, generator=generator).to(device),
        (torch.rand(num_envs, past, act_dim, generator=generator) * 2 - 1).to(device),
        torch.randn(num_envs, past, obs_dim, generator=generator).to(device),
        torch.full((num_envs,), past, dtype=torch.long, device=device),
    )
