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

``adaptation.de_select = "validation"`` chooses them by a fixed rule instead, after every
fit: of the step sizes :data:`DE_LR_GRID` x numbers of steps :data:`DE_STEPS_GRID`, the pair
with the lowest post-adaptation error on the K transitions that follow M adapted-on ones,
over segments of the held-out *training* episodes (MB's validation split; test tasks are
never seen). If no pair beats the unadapted model there, the step size is 0 (MB+DE is MB).
The chosen pair is saved with the checkpoint and logged (``fit/de_lr``, ``fit/de_steps``).

PE-TS + MB+DE (``model.ensemble = B``): MB's ensemble, every member taking the steps on the
same window (squared error of its mean); the step is chosen on the members' mean prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from learn2adapt.adaptation.inner_update import StepSize
from learn2adapt.adaptation.mb import ModelBased
from learn2adapt.adaptation.online import GuardCount, StepPredictors
from learn2adapt.data.segment_sampler import SegmentSampler, split_segment_starts
from learn2adapt.data.trajectory_buffer import TrajectoryBuffer
from learn2adapt.errors import ConfigError
from learn2adapt.types import Window

#: Step sizes and numbers of steps tried by ``adaptation.de_select = "validation"``.
DE_LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
DE_STEPS_GRID = (1, 2, 4)
#: Validation segments scored per pair (a fixed random subset: bounded cost).
DE_VAL_SEGMENTS = 512


class DynamicEvaluation(StepPredictors, ModelBased):
    """MB's model and fit; GrBAL's online update with a fixed step size ``de_lr``."""

    algo = "mbde"
    adapts_online = True
    records_online = True

    def _build(self) -> None:
        super()._build()
        # Not learned and not in ``module`` (its tensors stay those of MB); the pair in force
        # is saved beside the module in :meth:`state_dict`.
        self.step_size = StepSize("fixed", self.adapt_cfg.de_lr, {}).to(self.device)
        #: How often ``adaptation.guard`` reverted an online step (read per task by the evaluation).
        self.guard_count = GuardCount()
        self._use(self.adapt_cfg.de_lr, self.adapt_cfg.inner_steps)
        if self.model_cfg.ensemble > 1 and self.adapt_cfg.online_layers:
            raise ConfigError("adaptation.online_layers is implemented for a single model (model.ensemble=1)")

    def _use(self, lr: float, steps: int) -> None:
        self.de_lr, self.de_steps = float(lr), int(steps)
        self.step_size.alpha.fill_(self.de_lr)  # in place: it stays on the rule's device

    def fit(self, buffer: TrajectoryBuffer, rng: np.random.Generator, progress: bool = True) -> dict[str, float]:
        metrics = super().fit(buffer, rng, progress)
        if self.adapt_cfg.de_select == "validation":
            metrics.update(self.select_step(buffer, rng))
        metrics.update({"fit/de_lr": self.de_lr, "fit/de_steps": float(self.de_steps)})
        return metrics

    def select_step(self, buffer: TrajectoryBuffer, rng: np.random.Generator) -> dict[str, float]:
        """The rule of the module docstring; returns the validation errors it compared."""
        before, scores = self.step_errors(self.validation_segments(buffer, rng))
        best = min(scores, key=lambda pair: scores[pair])
        self._use(*(best if scores[best] < before else (0.0, 1)))
        return {"fit/val_loss_before_adapt": before, "fit/val_loss_after_adapt": min(before, scores[best])}

    def validation_segments(self, buffer: TrajectoryBuffer, rng: np.random.Generator) -> list[Window]:
        """M + K segments of MB's validation episodes (held-out training episodes), in chunks."""
        m, k = self.adapt_cfg.past, self.adapt_cfg.future
        val = self.val_mask
        train = ~val if val.any() else np.ones_like(val)  # no validation episodes: score on all
        _, starts = split_segment_starts(buffer, m + k, train, val, rng, DE_VAL_SEGMENTS)
        # Per-segment adapted weights are (B, in, out): bound a chunk to ~64 MB a layer.
        largest = max(p.numel() for p in self.model.params().values())
        return SegmentSampler(buffer, m + k, self.device).chunks(starts, max(1, min(256, (1 << 24) // largest)))

    def step_errors(self, chunks: list[Window]) -> tuple[float, dict[tuple[float, int], float]]:
        """Unadapted error, and the post-adaptation error of every (step size, steps) of the grid."""
        m, n = self.adapt_cfg.past, max(1, sum(len(w) for w in chunks))
        in_force = (self.de_lr, self.de_steps)
        before = sum(self.segment_errors(w, m, only="before")["before"] * len(w) for w in chunks) / n
        scores = {}
        for lr in DE_LR_GRID:
            for steps in DE_STEPS_GRID:
                self._use(lr, steps)
                scores[(lr, steps)] = sum(self.segment_errors(w, m, only="after")["after"] * len(w) for w in chunks) / n
        self._use(*in_force)
        return before, scores

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "dynamic_eval": {"lr": self.de_lr, "steps": self.de_steps}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        chosen = state.get("dynamic_eval")  # absent in checkpoints written before the selection
        if chosen is not None:
            self._use(chosen["lr"], chosen["steps"])

    @property
    def _online_steps(self) -> int:
        return self.de_steps  # the chosen number of test-time steps (de_select), not inner_steps
