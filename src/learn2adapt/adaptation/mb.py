"""MB: a single global dynamics model, no adaptation (the paper's main baseline).

With ``model.ensemble = B >= 2`` the model is a probabilistic ensemble (PETS; with
``planner.particles`` the planner does trajectory sampling): PE-TS, the base of CaDM's and
T-MCL's adaptive methods (:mod:`learn2adapt.models.ensemble`).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from learn2adapt.adaptation.base import AdaptationRule
from learn2adapt.data.trajectory_buffer import TrajectoryBuffer, split_episodes
from learn2adapt.models.dynamics import MLPDynamics
from learn2adapt.models.ensemble import EnsembleDynamics, fit_ensemble, make_dynamics
from learn2adapt.models.supervised import fit_transitions
from learn2adapt.types import PredictFn, Window


class ModelBased(AdaptationRule):
    """Non-adaptive MLP dynamics trained on all data (Nagabandi et al., 2018)."""

    algo = "mb"
    adapts_online = False

    def _build(self) -> None:
        self.model: MLPDynamics | EnsembleDynamics = make_dynamics(self.obs_dim, self.act_dim, self.model_cfg).to(
            self.device
        )

    @property
    def module(self) -> nn.Module:
        return self.model

    def fit(self, buffer: TrajectoryBuffer, rng: np.random.Generator, progress: bool = True) -> dict[str, float]:
        opt = self.begin_fit()
        self.fit_normalizer(buffer)
        train, val = split_episodes(buffer, self.fit_cfg.val_fraction, rng, self.fit_cfg.val_split)
        self.val_mask = val  # MB+DE chooses its test-time step on these held-out training episodes
        if isinstance(self.model, EnsembleDynamics):
            result = fit_ensemble(self.model, opt, buffer, train, val, self.fit_cfg, rng, progress)
        else:
            result = fit_transitions(self.model, opt, buffer, train, val, self.fit_cfg, rng, progress)
        return result.metrics()

    def predictor(self, recent: Window | None) -> PredictFn:
        return self.model.predict  # an ensemble samples (trajectory sampling)

    def mean_predictor(self, recent: Window | None) -> PredictFn:
        if isinstance(self.model, EnsembleDynamics):
            return self.model.predict_mean
        return self.predictor(recent)
