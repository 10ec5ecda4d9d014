"""Model-predictive path integral control (MPPI), the planner of the paper's real robot.

Williams et al., "Information theoretic MPC for model-based reinforcement learning",
ICRA 2017; the filtered-noise variant of Nagabandi et al., "Deep dynamics models
for learning dexterous manipulation" (PDDM), CoRL 2019.
"""

from __future__ import annotations

from typing import Any

import torch

from learn2adapt.errors import ConfigError
from learn2adapt.planning.config import MPPIOptions
from learn2adapt.planning.warm_start import WarmStartPlanner
from learn2adapt.types import PredictFn, RewardFn, TerminationFn


class MPPI(WarmStartPlanner):
    """Perturb the warm-started mean sequence and average the perturbations, weighted by
    ``exp(return / temperature)`` within each environment.

    Args:
        options: :class:`~learn2adapt.planning.config.MPPIOptions`: weighted-average
            updates per step (``num_candidates`` samples each); temperature lambda
            (smaller concentrates the weights on the best candidates); perturbation std
            as a fraction of the half action range; smoothing beta in [0, 1),
            ``n_t = (1 - beta) u_t + beta n_{t-1}`` on the white noise ``u`` (0: white).
        **kwargs: see :class:`~learn2adapt.planning.base.Planner`.
    """

    def __init__(self, *args: Any, options: MPPIOptions | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = options or MPPIOptions()
        if o.iterations < 1 or o.temperature <= 0.0 or o.noise_std <= 0.0 or not 0.0 <= o.smoothing < 1.0:
            raise ConfigError("MPPI needs iterations >= 1, temperature > 0, noise_std > 0 and 0 <= smoothing < 1")
        self.iterations = int(o.iterations)
        self.temperature = float(o.temperature)
        self.noise_std = float(o.noise_std)
        self.smoothing = float(o.smoothing)
        #: Candidate sequences evaluated per environment per call.
        self.samples_per_plan = self.iterations * self.num_candidates

    def _noise(self, num_envs: int) -> torch.Tensor:
        """Scaled (and optionally filtered) perturbations ``(E, N, H, A)``, one generator per env."""
        self._make_generators(num_envs)
        noise = self._buffer("actions", (num_envs, self.num_candidates, self.horizon, self.act_dim))
        for e in range(num_envs):
            torch.randn(noise.shape[1:], generator=self.generators[e], device=self.device, out=noise[e])
        if self.smoothing > 0.0:
            b = self.smoothing
            for t in range(1, self.horizon):  # in place, a loop over H only
                noise[:, :, t].mul_(1.0 - b).add_(noise[:, :, t - 1], alpha=b)
        return noise.mul_(self.noise_std * self.action_half_range)

    def _optimise(
        self, predict: PredictFn, reward_fn: RewardFn, obs: torch.Tensor, termination_fn: TerminationFn | None
    ) -> torch.Tensor:
        """The search of :meth:`Planner.plan`; returns the first action of the weighted mean."""
        num_envs = obs.shape[0]
        mean = self._warm_mean(num_envs)
        any_ok = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        for _ in self._iterations(self.iterations):
            actions = self._noise(num_envs).add_(mean.unsqueeze(1))
            actions.clamp_(min=self.action_low, max=self.action_high)
            returns = self.evaluate(predict, reward_fn, obs, actions, termination_fn)
            best = returns.max(dim=1, keepdim=True).values
            ok = torch.isfinite(best.squeeze(1))
            # Shift by the per-env best for stability; -inf returns get weight 0.
            weight = torch.softmax((returns - torch.where(torch.isfinite(best), best, 0.0)) / self.temperature, dim=1)
            new_mean = torch.einsum("en,enha->eha", weight, actions)
            mean = torch.where(ok[:, None, None], new_mean, mean)
            any_ok |= ok
        self._store_shifted(mean)
        first = mean[:, 0].clamp(min=self.action_low, max=self.action_high)
        return self._fallback(first, any_ok)
