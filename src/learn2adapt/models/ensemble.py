"""Probabilistic ensemble dynamics (PETS: Chua, Calandra, McAllister, Levine, NeurIPS 2018).

``B`` members, each a Gaussian over the normalised state change,
``N(mu_b(s~, a~), diag(exp(logvar_b(s~, a~))))``, trained with the Gaussian negative
log-likelihood on its own bootstrap resample of the training transitions. Members are a
leading batch dimension of every weight (``W (B, in, out)``, an
:class:`~learn2adapt.models.mlp.MLP` with ``members = B``): one batched matmul per layer, no
Python loop over members.

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

from typing import Any

import numpy as np
import torch
from torch import nn

from learn2adapt.data.trajectory_buffer import TrajectoryBuffer
from learn2adapt.errors import ConfigError
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.dynamics import MLPDynamics
from learn2adapt.models.fitting import FitResult, fit_early_stopping
from learn2adapt.models.mlp import ACTIVATIONS, MLP, Params
from learn2adapt.models.normalizer import Normalizer
from learn2adapt.models.supervised import transition_tensors

#: Weight of the log-variance bound penalty in the loss (PETS).
LOGVAR_BOUND_WEIGHT = 0.01


class GaussianOutput:
    """A Gaussian over the normalised state change from a network's raw output ``(..., 2 d)``: mean and
    soft-bounded log-variance (PETS, Appendix A.1). Shared by every ensemble model (MLP and recurrent);
    a subclass calls :meth:`init_logvar_bounds` after ``nn.Module.__init__``."""

    obs_dim: int
    max_logvar: nn.Parameter
    min_logvar: nn.Parameter
    nll_beta: float

    def init_logvar_bounds(self, nll_beta: float = 0.0) -> None:
        self.max_logvar = nn.Parameter(torch.full((self.obs_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((self.obs_dim,), -10.0))
        self.nll_beta = float(nll_beta)

    def gaussian(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and bounded log-variance from the network's raw output ``(..., 2 obs_dim)``."""
        mean, raw = out.split(self.obs_dim, dim=-1)
        logvar = self.max_logvar - nn.functional.softplus(self.max_logvar - raw)
        logvar = self.min_logvar + nn.functional.softplus(logvar - self.min_logvar)
        return mean, logvar

    def gaussian_nll(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Gaussian NLL of normalised targets under raw outputs ``out`` (constants dropped, mean over
        every axis) plus the bound penalty: the training loss, also GrBAL's outer loss on ensembles.

        With ``nll_beta > 0`` each term is weighted by its predicted variance to the power beta,
        held constant in the gradient (beta-NLL: Seitzer et al., "On the Pitfalls of
        Heteroscedastic Uncertainty Estimation with Probabilistic Neural Networks", ICLR 2022):
        the plain NLL scales the mean's gradient by ``1 / variance``, so the mean stays poor where
        the variance is still large; beta = 1 gives the mean the MSE's gradient.
        """
        mean, logvar = self.gaussian(out)
        terms = (mean - target).pow(2) * torch.exp(-logvar) + logvar
        if self.nll_beta:
            terms = terms * torch.exp(self.nll_beta * logvar.detach())
        return terms.mean() + LOGVAR_BOUND_WEIGHT * (self.max_logvar.sum() - self.min_logvar.sum())

    def sample(self, out: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A normalised state change drawn from the Gaussian of raw outputs ``out``."""
        mean, logvar = self.gaussian(out)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise


def to_member_rows(x: torch.Tensor, members: int) -> torch.Tensor:
    """``(G, R, F)`` -> ``(B, G, ceil(R / B), F)``: row ``r`` of every group goes to member ``r mod B``
    (trajectory sampling, TS-inf: a particle's row is the same at every step), padded with copies."""
    rows = x.shape[1]
    pad = (-rows) % members
    if pad:
        x = torch.cat([x, x[:, :pad]], dim=1)
    # Row r = q * B + m: member m gets rows m, m + B, m + 2B, ...
    return x.view(x.shape[0], -1, members, x.shape[-1]).permute(2, 0, 1, 3)


def from_member_rows(y: torch.Tensor, rows: int) -> torch.Tensor:
    """The inverse of :func:`to_member_rows`: ``(B, G, R', F)`` -> ``(G, rows, F)``."""
    groups = y.shape[1]
    return y.permute(1, 2, 0, 3).reshape(groups, -1, y.shape[-1])[:, :rows]


class EnsembleDynamics(GaussianOutput, nn.Module):
    """``B`` Gaussian MLPs ``[norm(obs), norm(act)] -> (mean, logvar)`` of ``norm(delta)``, batched over members.

    Like :class:`~learn2adapt.models.dynamics.MLPDynamics`, the prediction methods accept
    adapted weights (``params``: ``W (B, E, in, out)``, one set per member and environment,
    from GrBAL's or MB+DE's inner step); environment ``e`` then predicts its own rows.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.ensemble < 2:
            raise ConfigError("an ensemble needs model.ensemble >= 2 members")
        if cfg.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {cfg.activation!r}: use one of {sorted(ACTIVATIONS)}")
        self.obs_dim, self.act_dim, self.members = obs_dim, act_dim, int(cfg.ensemble)
        self.normalizer = Normalizer(obs_dim, act_dim)
        self.net = MLP(obs_dim + act_dim, 2 * obs_dim, cfg.hidden, cfg.activation, members=self.members)
        self.init_logvar_bounds(cfg.nll_beta)
        self._register_load_state_dict_pre_hook(_rename_pre_mlp_keys)

    def params(self) -> dict[str, torch.Tensor]:
        """The members' weights by name (``w0 (B, in, out)``, ``b0 (B, out)``, ...)."""
        return dict(self.net.named_parameters())

    def inputs(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.normalizer.norm_inputs(obs, act)

    def forward(self, x: torch.Tensor, params: Params | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Member outputs for ``x (B, ..., in)``: mean and bounded log-variance, each ``(B, ..., obs_dim)``."""
        return self.gaussian(self.net(x, params))

    def nll(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """:meth:`gaussian_nll` on transitions ``(B, M, ...)``: member ``b`` is scored on its own
        rows (its bootstrap batch)."""
        return self.gaussian_nll(self.net(self.inputs(obs, act)), self.normalizer.norm_delta(next_obs - obs))

    def mean_mse(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """MSE of the members' mean prediction on ``(M, ...)`` transitions (the validation measure)."""
        x = self.inputs(obs, act).reshape(1, -1, self.obs_dim + self.act_dim).expand(self.members, -1, -1)
        mean, _ = self(x)
        target = self.normalizer.norm_delta(next_obs - obs).reshape(-1, self.obs_dim)
        return (mean.mean(0) - target).pow(2).mean()

    def _grouped(self, obs: torch.Tensor, act: torch.Tensor, params: Params | None) -> tuple[torch.Tensor, int]:
        """Inputs as ``(G, R, in)``: one group per environment with adapted ``params`` (``obs (E, ...)``),
        else a single group of every row."""
        x = self.inputs(obs, act)
        groups = obs.shape[0] if params is not None else 1
        return x.reshape(groups, -1, x.shape[-1]), groups

    def predict(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        generator: torch.Generator | None = None,
        params: Params | None = None,
    ) -> torch.Tensor:
        """Sampled next observations; row ``r`` of each group (see :meth:`_grouped`) uses member ``r mod B``."""
        x, _ = self._grouped(obs, act, params)
        delta = self.sample(self.net(to_member_rows(x, self.members), params), generator)
        return obs + self.normalizer.denorm_delta(from_member_rows(delta, x.shape[1]).reshape(obs.shape))

    def predict_mean(self, obs: torch.Tensor, act: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """The next observation the members expect on average (no sampling)."""
        x, groups = self._grouped(obs, act, params)
        mean, _ = self(x.unsqueeze(0).expand(self.members, *x.shape), params)
        return obs + self.normalizer.denorm_delta(mean.mean(0).reshape(obs.shape))

    def loss(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The validation measure, as ``MLPDynamics.loss`` (prediction-error reports)."""
        return self.mean_mse(obs, act, next_obs)


def _rename_pre_mlp_keys(state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Ensembles written before they were an ``MLP(members=B)`` stored ``weights.i`` / ``biases.i (B, 1, out)``."""
    for key in [k for k in state if k.startswith(prefix + "weights.") or k.startswith(prefix + "biases.")]:
        kind, index = key[len(prefix) :].split(".")
        value = state.pop(key)
        state[f"{prefix}net.{kind[0]}{index}"] = value if kind == "weights" else value.squeeze(1)


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


def make_dynamics(obs_dim: int, act_dim: int, cfg: ModelConfig) -> MLPDynamics | EnsembleDynamics:
    """The one-step model ``cfg`` describes: a probabilistic ensemble when ``cfg.ensemble > 1``, else one MLP."""
    return EnsembleDynamics(obs_dim, act_dim, cfg) if cfg.ensemble > 1 else MLPDynamics(obs_dim, act_dim, cfg)
