"""The last M transitions of each running episode, for online adaptation.

Kept as fixed-size tensors (no per-step allocation): ``(E, M, ...)`` windows,
oldest first, with ``count[e]`` valid transitions at the end of row ``e``
(a new episode starts with ``count = 0``: see :class:`RecentHistory`).
"""

from __future__ import annotations

import torch

from learn2adapt.types import Window


class RecentHistory:
    """Rolling window of the last ``window`` transitions per environment.

    Args:
        num_envs: E.
        window: M, the number of past transitions adaptation uses.
        obs_dim: observation size.
        act_dim: action size.
    """

    def __init__(self, num_envs: int, window: int, obs_dim: int, act_dim: int, device="cpu") -> None:
        self.window = int(window)
        z = lambda d: torch.zeros(num_envs, max(self.window, 1), d, device=device)  # noqa: E731
        self.count = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.data = Window(z(obs_dim), z(act_dim), z(obs_dim), self.count)

    def reset(self, env_index: int | None = None) -> None:
        """Forget the history of one environment (all if None): a new episode or task reset."""
        sel = slice(None) if env_index is None else env_index
        for t in (self.data.obs, self.data.act, self.data.next_obs):
            t[sel] = 0.0
        self.count[sel] = 0

    def push(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> None:
        """Append one transition per environment (shapes ``(E, d)``)."""
        if self.window == 0:
            return
        for t, new in ((self.data.obs, obs), (self.data.act, act), (self.data.next_obs, next_obs)):
            t[:, :-1] = t[:, 1:].clone()
            t[:, -1] = new
        self.count.add_(1).clamp_(max=self.window)
