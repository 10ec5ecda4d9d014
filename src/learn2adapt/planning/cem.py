"""Cross-entropy method MPC.

Rubinstein, "The cross-entropy method for combinatorial and continuous
optimization", Methodology and Computing in Applied Probability, 1999; as an MPC
planner over learned models: Chua et al., "Deep RL in a handful of trials" (PETS),
NeurIPS 2018.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from learn2adapt.errors import ConfigError
from learn2adapt.planning.config import CEM_SAMPLINGS, CEMOptions
from learn2adapt.planning.warm_start import WarmStartPlanner
from learn2adapt.types import PredictFn, RewardFn, TerminationFn

#: Where ``sampling=truncated`` cuts the standard normal, in standard deviations (as mbrl-lib's PETS).
TRUNCATE_AT = 2.0


class CEM(WarmStartPlanner):
    """Iteratively refit a diagonal Gaussian over action sequences to each environment's elites.

    Elites are ranked *within* each environment (never pooled across environments,
    a defect of the original GrBAL code), samples are clipped to the action bounds
    before evaluation, and the mean is warm-started from the previous step's solution
    shifted by one step.

    Args:
        options: :class:`~learn2adapt.planning.config.CEMOptions` (iterations per step,
            ``num_candidates`` samples each; elites per environment, clamped to
            ``num_candidates``; smoothing ``alpha``: ``new = alpha * old + (1 - alpha) *
            elite statistic``; initial std as a fraction of the half action range; ``sampling``:
            ``clipped`` or ``truncated``, see :meth:`_candidates`).
        **kwargs: see :class:`~learn2adapt.planning.base.Planner`.
    """

    def __init__(self, *args: Any, options: CEMOptions | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = options or CEMOptions()
        if o.iterations < 1 or o.elites < 1 or not 0.0 <= o.alpha < 1.0 or o.init_std <= 0.0:
            raise ConfigError("CEM needs iterations >= 1, elites >= 1, 0 <= alpha < 1 and init_std > 0")
        self.iterations = int(o.iterations)
        self.elites = min(int(o.elites), self.num_candidates)
        self.alpha = float(o.alpha)
        self.init_std = float(o.init_std)
        if o.sampling not in CEM_SAMPLINGS:
            raise ConfigError(f"unknown CEM sampling {o.sampling!r}; available: {', '.join(CEM_SAMPLINGS)}")
        self.truncated = o.sampling == "truncated"
        #: Candidate sequences evaluated per environment per call.
        self.samples_per_plan = self.iterations * self.num_candidates

    def _sample_normal(self, name: str, num_envs: int, count: int) -> torch.Tensor:
        """Standard normals ``(E, count, H, act_dim)``, environment ``e`` from its own generator;
        with ``sampling=truncated``, truncated to ``[-TRUNCATE_AT, TRUNCATE_AT]`` (inverse CDF)."""
        self._make_generators(num_envs)
        noise = self._buffer(name, (num_envs, count, self.horizon, self.act_dim))
        if not self.truncated:
            for e in range(num_envs):
                torch.randn(noise.shape[1:], generator=self.generators[e], device=self.device, out=noise[e])
            return noise
        edge = math.erf(TRUNCATE_AT / math.sqrt(2.0))  # 2 Phi(c) - 1
        for e in range(num_envs):
            noise[e].uniform_(-edge, edge, generator=self.generators[e])
        return noise.erfinv_().mul_(math.sqrt(2.0))

    def _candidates(self, noise: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """``clip(mean + std * noise)`` computed in place in ``noise``.

        With ``sampling=truncated`` the std is first capped at ``1 / TRUNCATE_AT`` of the distance
        from the mean to the nearer bound, so the truncated samples lie inside the bounds (the
        clip only guards rounding) instead of piling up on them.
        """
        if self.truncated:
            room = torch.minimum(mean - self.action_low, self.action_high - mean).clamp(min=0.0)
            std = torch.minimum(std, room / TRUNCATE_AT)
        noise.mul_(std.unsqueeze(1)).add_(mean.unsqueeze(1))
        return noise.clamp_(min=self.action_low, max=self.action_high)

    def _refit(
        self,
        actions: torch.Tensor,
        returns: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        num_elites: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Refit ``mean`` and ``std`` to each environment's own top ``num_elites`` candidates.

        Elites with non-finite returns get zero weight; an environment with none keeps
        its distribution.

        Returns:
            New mean and std ``(E, H, A)``, whether each environment had a finite elite
            ``(E,)``, the elites ``(E, K, H, A)`` (best first) and their returns ``(E, K)``.
        """
        top_r, idx = returns.topk(num_elites, dim=1)  # per environment: row-wise
        rows = torch.arange(actions.shape[0], device=actions.device).unsqueeze(1)
        elites = actions[rows, idx]
        weight = torch.isfinite(top_r).to(actions.dtype)
        count = weight.sum(dim=1)
        ok = count > 0
        weight = (weight / count.clamp(min=1.0).unsqueeze(1))[..., None, None]
        e_mean = (elites * weight).sum(dim=1)
        e_std = ((elites - e_mean.unsqueeze(1)).square() * weight).sum(dim=1).sqrt()
        keep = ok[:, None, None]
        new_mean = torch.where(keep, self.alpha * mean + (1.0 - self.alpha) * e_mean, mean)
        new_std = torch.where(keep, self.alpha * std + (1.0 - self.alpha) * e_std, std)
        return new_mean, new_std, ok, elites, top_r

    def _start(self, num_envs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first iteration's sampling distribution: the warm-start mean and ``init_std`` x half the range."""
        mean = self._warm_mean(num_envs)
        return mean, (self.init_std * self.action_half_range).expand_as(mean).clone()

    def _optimise(
        self, predict: PredictFn, reward_fn: RewardFn, obs: torch.Tensor, termination_fn: TerminationFn | None
    ) -> torch.Tensor:
        """The search of :meth:`Planner.plan`; returns the first action of the final mean."""
        num_envs = obs.shape[0]
        mean, std = self._start(num_envs)
        any_ok = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        for _ in self._iterations(self.iterations):
            actions = self._candidates(self._sample_normal("actions", num_envs, self.num_candidates), mean, std)
            returns = self.evaluate(predict, reward_fn, obs, actions, termination_fn)
            mean, std, ok, _, _ = self._refit(actions, returns, mean, std, self.elites)
            any_ok |= ok
        self._store_shifted(mean)
        first = mean[:, 0].clamp(min=self.action_low, max=self.action_high)
        return self._fallback(first, any_ok)
