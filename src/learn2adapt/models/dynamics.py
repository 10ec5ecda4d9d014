"""MLP dynamics model: predicts the normalised state change.

``s' = s + denorm(f_theta(norm(s), norm(a)))`` (Nagabandi et al., 2018, 2019):
predicting the change of state keeps targets well scaled and makes the
identity dynamics the zero function.
"""

from __future__ import annotations

import torch
from torch import nn

from learn2adapt.models.config import ModelConfig
from learn2adapt.models.mlp import MLP, Params
from learn2adapt.models.normalizer import Normalizer


class MLPDynamics(nn.Module):
    """Normaliser + MLP on ``[norm(obs), norm(act)] -> norm(delta)``.

    All methods accept an optional ``params`` dict (adapted weights, possibly with
    a leading per-environment dimension) in place of the module's own.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.normalizer = Normalizer(obs_dim, act_dim)
        self.net = MLP(obs_dim + act_dim, obs_dim, cfg.hidden, cfg.activation)

    def params(self) -> dict[str, torch.Tensor]:
        """The network's own parameters, by name (``w0``, ``b0``, ...)."""
        return dict(self.net.named_parameters())

    def inputs(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.normalizer.norm_inputs(obs, act)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Normalised predicted state change."""
        return self.net(self.inputs(obs, act), params)

    def loss(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        params: Params | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean squared error in normalised state-change space.

        ``mask`` (shape ``obs.shape[:-1]``) selects the transitions that count.
        """
        err = (self(obs, act, params) - self.normalizer.norm_delta(next_obs - obs)).pow(2).mean(-1)
        if mask is None:
            return err.mean()
        m = mask.to(err.dtype)
        return (err * m).sum() / m.sum().clamp(min=1.0)

    def predict(self, obs: torch.Tensor, act: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """Next observation."""
        return obs + self.normalizer.denorm_delta(self(obs, act, params))
