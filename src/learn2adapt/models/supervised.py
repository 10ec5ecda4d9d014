"""Supervised fitting of an MLP dynamics model on single transitions (the MB baseline)."""

from __future__ import annotations

import numpy as np
import torch

from learn2adapt.data.trajectory_buffer import TrajectoryBuffer
from learn2adapt.models.config import FitConfig
from learn2adapt.models.dynamics import MLPDynamics
from learn2adapt.models.fitting import FitResult, fit_early_stopping


def transition_tensors(
    model: torch.nn.Module, buffer: TrajectoryBuffer, train_mask: np.ndarray, val_mask: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The buffer's ``obs, act, next_obs`` on the model's device, and the validation indices
    (the training ones when there is no validation episode)."""
    device = next(model.parameters()).device
    t = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device)  # noqa: E731
    val_idx = torch.as_tensor(np.flatnonzero(val_mask if val_mask.any() else train_mask), device=device)
    return t(buffer.obs), t(buffer.act), t(buffer.next_obs), val_idx


def fit_transitions(
    model: MLPDynamics,
    optimizer: torch.optim.Optimizer,
    buffer: TrajectoryBuffer,
    train_mask: np.ndarray,
    val_mask: np.ndarray,
    cfg: FitConfig,
    rng: np.random.Generator,
    progress: bool = True,
) -> FitResult:
    """Minibatch MSE on normalised state changes, early-stopped on held-out episodes."""
    obs, act, nxt, val_idx = transition_tensors(model, buffer, train_mask, val_mask)
    device = obs.device
    train_idx = np.flatnonzero(train_mask)

    def epoch_batches():
        order = torch.as_tensor(rng.permutation(train_idx), device=device)
        return order.split(cfg.batch_size)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return model.loss(obs[idx], act[idx], nxt[idx])

    def val_loss() -> float:
        with torch.no_grad():
            return float(model.loss(obs[val_idx], act[val_idx], nxt[val_idx]))

    return fit_early_stopping(optimizer, epoch_batches, batch_loss, val_loss, cfg, desc="fit model", progress=progress)
