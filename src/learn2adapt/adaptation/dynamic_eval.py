"""MB+DE: the MB model plus test-time gradient steps on recent data (dynamic evaluation).

The paper's second baseline (Nagabandi, Clavera et al., ICLR 2019, Sec. 6; Krause et
al., 2017): the same non-adaptive model as MB, trained the same way (no meta-training),
adapted online exactly like GrBAL: at every control step, starting again from the
fitted theta*, ``inner_steps`` gradient steps on the last M transitions of each
environment's episode, per environment and batched (same episode-start rule: with
``count < M`` the step is scaled by ``count / M``; with none, the MB model unchanged).

Step size: ``adaptation.de_lr`` (default 0.01), not ``inner_lr``. GrBAL's alpha is one
the model was meta-trained to make good use of (0.001 in the official code); a model
trained without adaptation in mind needs a larger step to move at all on 16
transitions. Tune it per environment and model size: the best value scales with the
size of the gradients (on the synthetic family of the tests, a 64x64 MLP, 0.03-0.1 was
best and 0.3 already hurt); tests/test_grbal.py takes the best of a grid, so GrBAL is
compared with MB+DE at its best.
"""

from __future__ import annotations

import torch

from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.adaptation.inner_update import StepSize, adapted_predictor
from learn2adapt.adaptation.mb import ModelBased
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.types import PredictFn, Window


class DynamicEvaluation(ModelBased):
    """MB's model and fit; GrBAL's online update with a fixed step size ``de_lr``."""

    algo = "mbde"
    adapts_online = True

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        model_cfg: ModelConfig,
        fit_cfg: FitConfig,
        adapt_cfg: AdaptationConfig,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(obs_dim, act_dim, model_cfg, fit_cfg, adapt_cfg, device)
        # Not a learned tensor and not in ``module``: checkpoints stay those of MB.
        self.step_size = StepSize("fixed", adapt_cfg.de_lr, {}).to(self.device)

    def predictor(self, recent: Window | None) -> PredictFn:
        return adapted_predictor(self.model, recent, self.step_size, self.adapt_cfg.inner_steps)
