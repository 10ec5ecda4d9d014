"""A learned reward (and termination) for environments that give the planner none (``reward=learned``).

The planner scores a candidate with ``r(s, a, s')`` summed over the predicted states. A
Gymnasium environment of the user's has no batched reward function, so, as mbrl-lib does for
any environment, a network learns it from the collected transitions: an MLP over the
normalised ``(s, a, s' - s)`` regressing the normalised reward, and, with
``termination=learned``, a second output, the logit of "this step ended the episode in a
terminal state" (binary cross-entropy, positives weighted by their rarity).

It is fitted after the dynamics model in every iteration, with the run's ``fit`` settings
(Adam, batches, epochs, early stopping on the same held-out episodes), and is *not* adapted
online: in the paper's setting a task changes the dynamics, not the objective, and the
reward of a transition ``(s, a, s')`` is a function of that transition alone, so the
adaptation budget (a few recent transitions, one gradient step) goes to the dynamics, where
the error is. A robot whose objective itself drifts would need the head adapted too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from learn2adapt.data.trajectory_buffer import TrajectoryBuffer, split_episodes
from learn2adapt.models.config import FitConfig
from learn2adapt.models.fitting import fit_early_stopping
from learn2adapt.models.mlp import MLP
from learn2adapt.models.normalizer import MIN_STD
from learn2adapt.models.supervised import transition_tensors


class LearnedReward(nn.Module):
    """``r(s, a, s')`` (and a termination logit) from an MLP over normalised ``(s, a, s' - s)``.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hidden: layer widths (the run's ``model.hidden``).
        termination: also learn termination flags.
    """

    in_mean: torch.Tensor
    in_std: torch.Tensor
    reward_mean: torch.Tensor
    reward_std: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], termination: bool = False) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.termination = obs_dim, act_dim, termination
        width = 2 * obs_dim + act_dim
        self.net = MLP(width, 2 if termination else 1, hidden)
        self.register_buffer("in_mean", torch.zeros(width))
        self.register_buffer("in_std", torch.ones(width))
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_std", torch.ones(()))

    def _inputs(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act, next_obs - obs], dim=-1)
        return (x - self.in_mean) / self.in_std

    def _outputs(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-1]
        x = self._inputs(obs, act, next_obs).reshape(-1, self.in_mean.shape[0])
        return self.net(x).reshape(*lead, -1)

    def reward_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Batched predicted reward ``(...,)`` from ``(..., d)`` inputs (the planner's ``RewardFn``)."""
        out = self._outputs(obs, act, next_obs)[..., 0].float()
        return out * self.reward_std + self.reward_mean

    def termination_fn(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Batched predicted termination flags (logit > 0)."""
        return self._outputs(obs, act, next_obs)[..., 1] > 0

    def rmse(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor) -> float:
        """Root-mean-square error of the predicted reward against ``reward`` (the rewards observed)."""
        with torch.no_grad():
            return float((self.reward_fn(obs, act, next_obs) - reward).pow(2).mean().sqrt())

    def _set_statistics(self, x: np.ndarray, reward: np.ndarray) -> None:
        std = x.std(axis=0)
        self.in_mean.copy_(torch.as_tensor(x.mean(axis=0), dtype=torch.float32))
        self.in_std.copy_(torch.as_tensor(np.where(std < MIN_STD, 1.0, std), dtype=torch.float32))
        self.reward_mean.fill_(float(reward.mean()))
        self.reward_std.fill_(float(max(reward.std(), MIN_STD)))

    def fit(
        self, buffer: TrajectoryBuffer, cfg: FitConfig, rng: np.random.Generator, progress: bool = True
    ) -> dict[str, float]:
        """Fit on every transition of ``buffer`` (early-stopped on held-out episodes); returns metrics.

        ``reward/val_rmse`` is the held-out root-mean-square reward error in reward units, and
        ``reward/val_relative`` the same divided by the rewards' standard deviation (0: exact,
        1: no better than their mean).
        """
        x = np.concatenate([buffer.obs, buffer.act, buffer.next_obs - buffer.obs], axis=1).astype(np.float64)
        self._set_statistics(x, buffer.reward.astype(np.float64))
        train_mask, val_mask = split_episodes(buffer, cfg.val_fraction, rng, cfg.val_split)
        obs, act, nxt, val_idx = transition_tensors(self, buffer, train_mask, val_mask)
        device = obs.device
        reward = torch.as_tensor(buffer.reward, device=device)
        target = (reward - self.reward_mean) / self.reward_std
        done = torch.as_tensor(buffer.terminated, dtype=torch.float32, device=device)
        positives = float(done.sum())
        pos_weight = torch.tensor((len(done) - positives) / positives if positives else 1.0, device=device)
        train_idx = np.flatnonzero(train_mask)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            out = self._outputs(obs[idx], act[idx], nxt[idx]).float()
            value = nn.functional.mse_loss(out[:, 0], target[idx])
            if self.termination:
                value = value + nn.functional.binary_cross_entropy_with_logits(
                    out[:, 1], done[idx], pos_weight=pos_weight
                )
            return value

        def val_loss() -> float:
            with torch.no_grad():
                return float(loss(val_idx))

        optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        result = fit_early_stopping(
            optimizer,
            lambda: torch.as_tensor(rng.permutation(train_idx), device=device).split(cfg.batch_size),
            loss,
            val_loss,
            cfg,
            desc="fit reward",
            progress=progress,
        )
        rmse = self.rmse(obs[val_idx], act[val_idx], nxt[val_idx], reward[val_idx])
        return {
            **result.metrics("reward"),
            "reward/val_rmse": rmse,
            "reward/val_relative": rmse / float(self.reward_std),
        }
