"""Probabilistic ensemble dynamics (PETS: Chua, Calandra, McAllister, Levine, NeurIPS 2018).

``B`` members, each a Gaussian over the normalised state change,
``N(mu_b(s~, a~), diag(exp(logvar_b(s~, a~))))``, trained with the Gaussian negative
log-likelihood on its own bootstrap resample of the training transitions. Members are a
leading batch dimension of every weight (``W (B, in, out)``): one batched matmul per
layer, no Python loop over members.

The log-variance is bounded softly between learned ``min_logvar`` and ``max_logvar``
(PETS Appendix A.1): ``max - softplus(max - raw)`` then ``min + softplus(. - min)``, with a
small penalty ``0.01 (sum max - sum min)`` that keeps the bounds tight.

Planning (trajectory sampling, TS-inf): :meth:`EnsembleDynamics.predict` takes rows of
states (any leading shape, flattened) and binds row ``r`` to member ``r mod B``. The
planner keeps each particle in the same row over the horizon (rows ``n * P + p``), so a
particle stays on one member from start to end; its next state is *sampled* from that
member's Gaussian.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from learn2adapt.data.normalizer import Normalizer
from learn2adapt.data.trajectory_buffer import TrajectoryBuffer
from learn2adapt.errors import ConfigError
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.fitting import FitResult, fit_early_stopping
from learn2adapt.models.mlp import ACTIVATIONS
from learn2adapt.models.supervised import transition_tensors

#: Weight of the log-variance bound penalty in the loss (PETS).
LOGVAR_BOUND_WEIGHT = 0.01


class EnsembleDynamics(nn.Module):
    """``B`` Gaussian MLPs ``[norm(obs), norm(act)] -> (mean, logvar)`` of ``norm(delta)``, batched over members."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.ensemble < 2:
            raise ConfigError("an ensemble needs model.ensemble >= 2 members")
        if cfg.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {cfg.activation!r}: use one of {sorted(ACTIVATIONS)}")
        self.obs_dim, self.act_dim, self.members = obs_dim, act_dim, int(cfg.ensemble)
        self.normalizer = Normalizer(obs_dim, act_dim)
        self.activation = ACTIVATIONS[cfg.activation]
        sizes = [obs_dim + act_dim, *cfg.hidden, 2 * obs_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(a)  # as nn.Linear, per member
            self.weights.append(nn.Parameter(torch.empty(self.members, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(self.members, 1, b).uniform_(-bound, bound)))
        self.max_logvar = nn.Parameter(torch.full((obs_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((obs_dim,), -10.0))

    def inputs(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        n = self.normalizer
        return torch.cat([n.norm_obs(obs), n.norm_act(act)], dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Member outputs for ``x (B, M, in)``: mean and bounded log-variance, each ``(B, M, obs_dim)``."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self.activation(x)
        mean, raw = x.split(self.obs_dim, dim=-1)
        logvar = self.max_logvar - nn.functional.softplus(self.max_logvar - raw)
        logvar = self.min_logvar + nn.functional.softplus(logvar - self.min_logvar)
        return mean, logvar

    def nll(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Gaussian NLL (constants dropped, mean over members, transitions and dimensions) + bound penalty.

        Inputs are ``(B, M, ...)``: member ``b`` is scored on its own rows (its bootstrap batch).
        """
        mean, logvar = self(self.inputs(obs, act))
        target = self.normalizer.norm_delta(next_obs - obs)
        nll = ((mean - target).pow(2) * torch.exp(-logvar) + logvar).mean()
        return nll + LOGVAR_BOUND_WEIGHT * (self.max_logvar.sum() - self.min_logvar.sum())

    def mean_mse(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """MSE of the members' mean prediction on ``(M, ...)`` transitions (the validation measure)."""
        x = self.inputs(obs, act).expand(self.members, *obs.shape[:-1], -1)
        mean, _ = self(x)
        target = self.normalizer.norm_delta(next_obs - obs)
        return (mean.mean(0) - target).pow(2).mean()

    def predict(self, obs: torch.Tensor, act: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sampled next observations; row ``r`` of the flattened leading dimensions uses member ``r mod B``."""
        lead = obs.shape[:-1]
        rows = int(np.prod(lead)) if lead else 1
        x = self.inputs(obs, act).reshape(rows, -1)
        pad = (-rows) % self.members
        if pad:
            x = torch.cat([x, x[:pad]])
        # Row r = q * B + b: member b gets rows b, b + B, b + 2B, ...
        xb = x.view(-1, self.members, x.shape[-1]).transpose(0, 1)
        mean, logvar = self(xb)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        delta = (mean + torch.exp(0.5 * logvar) * noise).transpose(0, 1).reshape(-1, self.obs_dim)[:rows]
        return obs + self.normalizer.denorm_delta(delta.view(*lead, self.obs_dim))

    def predict_mean(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The next observation the members expect on average (no sampling)."""
        x = self.inputs(obs, act)
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.members, -1, -1)
        mean, _ = self(flat)
        delta = mean.mean(0).view(*obs.shape[:-1], self.obs_dim)
        return obs + self.normalizer.denorm_delta(delta)

    def loss(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The validation measure, as ``MLPDynamics.loss`` (prediction-error reports)."""
        return self.mean_mse(obs, act, next_obs)


def bootstrap_indices(train_idx: np.ndarray, members: int, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap resample (with replacement, the size of the training set) per member: ``(B, n)``."""
    return rng.choice(train_idx, size=(members, train_idx.size), replace=True)


def fit_ensemble(
    model: EnsembleDynamics,
    optimizer: torch.optim.Optimizer,
    buffer: TrajectoryBuffer,
    train_mask: np.ndarray,
    val_mask: np.ndarray,
    cfg: FitConfig,
    rng: np.random.Generator,
    progress: bool = True,
) -> FitResult:
    """NLL minibatches ``(B, batch)``, each member on its own bootstrap resample of the training
    transitions, early-stopped on the validation MSE of the members' mean prediction."""
    obs, act, nxt, val_idx = transition_tensors(model, buffer, train_mask, val_mask)
    device = obs.device
    boot = bootstrap_indices(np.flatnonzero(train_mask), model.members, rng)

    def epoch_batches():
        order = np.stack([rng.permutation(row) for row in boot])  # each member shuffles its own resample
        return torch.as_tensor(order, device=device).split(cfg.batch_size, dim=1)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return model.nll(obs[idx], act[idx], nxt[idx])

    def val_loss() -> float:
        with torch.no_grad():
            return float(model.mean_mse(obs[val_idx], act[val_idx], nxt[val_idx]))

    return fit_early_stopping(
        optimizer, epoch_batches, batch_loss, val_loss, cfg, desc="fit ensemble", progress=progress
    )
