"""Improved cross-entropy method (iCEM).

Pinneri et al., "Sample-efficient cross-entropy method for real-time planning",
CoRL 2020: coloured (temporally correlated) sampling noise, elites kept across
iterations and shifted across steps, a shrinking population, the mean among the
last iteration's candidates, and execution of the best sequence seen.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from learn2adapt.errors import ConfigError
from learn2adapt.planning.cem import CEM
from learn2adapt.planning.config import ICEMOptions
from learn2adapt.types import PredictFn, RewardFn, TerminationFn


class ICEM(CEM):
    """CEM with the sample-efficiency improvements of Pinneri et al. (2020).

    Per iteration ``i`` the population is ``max(N / decay^i, 2 K)`` fresh samples plus
    ``round(keep_elites * K)`` carried elites (the previous iteration's, or at the first
    iteration the previous step's, shifted by one step). Environments whose episode
    just started (see :meth:`reset`) use fresh samples in the carried slots.

    Args:
        options: :class:`~learn2adapt.planning.config.ICEMOptions`: CEM's iterations,
            elites K, momentum ``alpha`` and initial std, plus ``noise_beta`` (exponent of
            the noise power spectrum ``1 / f^beta`` along the horizon; 0: white noise as in
            CEM, 2: the paper's usual "red" noise), ``keep_elites`` (fraction of elites
            carried to the next iteration and step) and ``population_decay`` (gamma >= 1).
        **kwargs: see :class:`~learn2adapt.planning.base.Planner`.
    """

    def __init__(self, *args: Any, options: ICEMOptions | None = None, **kwargs: Any) -> None:
        o = options or ICEMOptions()
        super().__init__(*args, options=o, **kwargs)  # an ICEMOptions is a CEMOptions
        if o.noise_beta < 0.0 or not 0.0 <= o.keep_elites <= 1.0 or o.population_decay < 1.0:
            raise ConfigError("iCEM needs noise_beta >= 0, 0 <= keep_elites <= 1 and population_decay >= 1")
        if self.truncated and o.noise_beta > 0.0:
            raise ConfigError(
                "planner.icem.sampling=truncated truncates white noise: set planner.icem.noise_beta=0, or sampling=clipped"
            )
        self.noise_beta = float(o.noise_beta)
        self.keep_elites = float(o.keep_elites)
        self.population_decay = float(o.population_decay)
        self.num_keep = int(round(self.keep_elites * self.elites))
        #: Fresh samples per iteration (the carried elites come on top).
        self.population = [
            max(int(self.num_candidates / self.population_decay**i), min(2 * self.elites, self.num_candidates))
            for i in range(self.iterations)
        ]
        self.samples_per_plan = sum(p + self.num_keep for p in self.population)
        self._elites: torch.Tensor | None = None  # (E, num_keep, H - 1, A): last step's elites, shifted
        self._has_elites: torch.Tensor | None = None  # (E,) bool
        self._spectrum = self._noise_spectrum()

    def _noise_spectrum(self) -> torch.Tensor | None:
        """Amplitude per rfft frequency for unit-variance ``1/f^beta`` noise (None: white).

        Timmer & Koenig, "On generating power law noise", A&A 1995, as in the
        ``colorednoise`` package used by the iCEM authors, except that the normalisation
        counts the zero-frequency term too, so every step has variance exactly 1 (the
        package's is > 1 on short horizons: 1.3 for H=30, beta=2).
        """
        H = self.horizon
        if self.noise_beta == 0.0 or H < 2:
            return None
        f = torch.fft.rfftfreq(H, dtype=torch.float64, device=self.device)
        f[0] = 1.0 / H  # the zero frequency gets the lowest nonzero frequency's power
        amp = f ** (-self.noise_beta / 2.0)
        # Variance of one irfft output step: DC (x sqrt 2) and even-H Nyquist (x sqrt 2)
        # terms are real, the others contribute 2 Re(.) each.
        var = 4.0 * amp.square().sum() - 2.0 * amp[0] ** 2
        if H % 2 == 0:
            var = var - 2.0 * amp[-1] ** 2
        return (amp * H / var.sqrt()).to(torch.float32)

    def _coloured(self, name: str, num_envs: int, count: int) -> torch.Tensor:
        """Unit-variance coloured noise ``(E, count, H, act_dim)``, env ``e`` from its own generator."""
        if self._spectrum is None:
            return self._sample_normal(name, num_envs, count)
        self._make_generators(num_envs)
        H, A = self.horizon, self.act_dim
        F = self._spectrum.shape[0]
        parts = self._buffer(name + "_spec", (num_envs, 2, count, A, F))
        for e in range(num_envs):
            torch.randn(parts.shape[1:], generator=self.generators[e], device=self.device, out=parts[e])
        re, im = parts[:, 0] * self._spectrum, parts[:, 1] * self._spectrum
        # Real-valued DC (and Nyquist for even H) components, with their variance restored.
        im[..., 0] = 0.0
        re[..., 0] *= math.sqrt(2.0)
        if H % 2 == 0:
            im[..., -1] = 0.0
            re[..., -1] *= math.sqrt(2.0)
        noise = torch.fft.irfft(torch.complex(re, im), n=H, dim=-1)  # (E, count, A, H)
        out = self._buffer(name, (num_envs, count, H, A))
        out.copy_(noise.transpose(-1, -2))
        return out

    def reset(self, env_mask: torch.Tensor | None = None) -> None:
        """Restart the mean and drop the carried elites of the masked environments (all if None)."""
        super().reset(env_mask)
        if self._has_elites is not None:
            idx = self._mask_indices(env_mask, self._has_elites.shape[0])
            self._has_elites[idx] = False

    def _optimise(
        self, predict: PredictFn, reward_fn: RewardFn, obs: torch.Tensor, termination_fn: TerminationFn | None
    ) -> torch.Tensor:
        """The search of :meth:`Planner.plan`; returns the first action of the best sequence evaluated."""
        num_envs = obs.shape[0]
        mean, std = self._start(num_envs)
        has_carried = self._own_has_elites(num_envs).clone()
        # Environments without elites (episode starts) are masked out below: no host sync here.
        fits = self._elites is not None and self._elites.shape[0] == num_envs
        carried = self._elites if self.num_keep > 0 and fits else None
        best_ret = torch.full((num_envs,), -torch.inf, device=self.device)
        best_first = self.action_mid.expand(num_envs, self.act_dim).clone()
        for i in self._iterations(self.iterations):
            pop = self.population[i]
            count = pop + self.num_keep
            actions = self._candidates(self._coloured(f"actions{i}", num_envs, count), mean, std)
            if carried is not None:
                # Carried elites replace the first fresh samples (kept for envs without any);
                # shifted ones (first iteration) are one step short: the fresh sample ends them.
                span = actions[:, : self.num_keep, : carried.shape[2]]
                span.copy_(torch.where(has_carried[:, None, None, None], carried, span))
            if i == self.iterations - 1:
                actions[:, -1] = mean.clamp(min=self.action_low, max=self.action_high)
            returns = self.evaluate(predict, reward_fn, obs, actions, termination_fn)
            mean, std, _, elites, top_r = self._refit(actions, returns, mean, std, min(self.elites, count))
            better = top_r[:, 0] > best_ret
            best_ret = torch.where(better, top_r[:, 0], best_ret)
            best_first = torch.where(better[:, None], elites[:, 0, 0], best_first)
            carried = elites[:, : self.num_keep].clone() if self.num_keep > 0 else None
            has_carried = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        self._store_shifted(mean)
        if carried is not None:
            # Shift the elites one step (drop the executed action) for the next call; in place
            # where they are kept (a recorded plan carries them to the next replay).
            if self._elites is not None and self._elites.shape == carried[:, :, 1:].shape:
                self._elites.copy_(carried[:, :, 1:])
            else:
                self._elites = carried[:, :, 1:].clone()
            self._own_has_elites(num_envs).fill_(True)
        ok = torch.isfinite(best_ret)
        return self._fallback(best_first, ok)

    def _own_has_elites(self, num_envs: int) -> torch.Tensor:
        """Which environments carry elites ``(E,)`` (made False for new slots)."""
        if self._has_elites is None or self._has_elites.shape[0] != num_envs:
            self._has_elites = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        return self._has_elites

    def _capture_state(self, num_envs: int) -> list[torch.Tensor]:
        """With the mean, the carried elites and their flags: a recorded plan always takes the carried
        branch, over zero elites flagged absent before the first plan (the eager plan's values exactly)."""
        has_elites = self._own_has_elites(num_envs)
        state = [*super()._capture_state(num_envs), has_elites]
        if self.num_keep > 0:
            shape = (num_envs, self.num_keep, self.horizon - 1, self.act_dim)
            if self._elites is None or self._elites.shape != shape:
                self._elites = torch.zeros(shape, device=self.device)
                has_elites.zero_()
            state.append(self._elites)
        return state
