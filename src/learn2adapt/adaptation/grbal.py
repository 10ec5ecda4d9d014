"""GrBAL: gradient-based adaptive learner (Nagabandi, Clavera et al., ICLR 2019, Sec. 4.1).

Meta-training (Alg. 1, Eq. 3-4). Segments of M + K consecutive transitions are cut
at random from the stored episodes (tasks are defined by temporal locality: no task
labels). For each segment, the model adapts on its first M transitions,

    theta' = theta - alpha * grad_theta L(D_past, theta)        (one or more steps),

and is scored on the K that follow; the outer loss, the mean over a meta-batch of
segments of ``L(D_future, theta')``, is minimised over theta (and alpha, when learned)
with Adam. Differentiating through the inner step gives the exact second-order
meta-gradient (MAML); ``first_order`` drops it (FOMAML). The batched inner update is in
:mod:`learn2adapt.adaptation.inner_update`.

Fitting is warm-started across iterations with the rule's persistent Adam and early
stopped on the *post-adaptation* loss of validation-episode segments (docs/method.md Sec. 2).

Online (Alg. 2): at every control step the predictor starts again from theta*, takes
the inner step(s) on the last M transitions of each environment's current episode and
plans with the per-environment theta'. With fewer than M transitions (episode start) it
adapts on those it has, their errors summed over M (a step scaled by count / M: see
inner_update; ``adaptation.short_past`` also meta-trains on such windows), and with
none it predicts with theta* unchanged. Nothing
adapted is kept between calls, so nothing survives an episode end, a task reset or a
retrain (the official code's stale adapted weights, docs/method.md Sec. 5).

PE-TS + GrBAL (``model.ensemble = B``): a probabilistic ensemble (PETS) meta-trained the same
way, each member on its own bootstrap resample of the segments, adapting with its own inner
step (squared error of its mean) and scored on the future by the Gaussian NLL; online every
member adapts on the same window and the planner samples trajectories from them (TS-inf).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from learn2adapt.adaptation.base import AdaptationRule
from learn2adapt.adaptation.inner_update import (
    Params,
    StepSize,
    adapt_batched,
    adapt_vmap,
    adapted_forward,
    normalised,
    resolve_impl,
)
from learn2adapt.adaptation.online import GuardCount, StepPredictors
from learn2adapt.data.segment_sampler import SegmentSampler, short_past_counts, split_segment_starts
from learn2adapt.data.trajectory_buffer import TrajectoryBuffer, split_episodes
from learn2adapt.errors import ConfigError
from learn2adapt.models.dynamics import MLPDynamics
from learn2adapt.models.ensemble import EnsembleDynamics, bootstrap_indices, make_dynamics
from learn2adapt.models.fitting import fit_early_stopping
from learn2adapt.planning.cuda_graph import Capture, Recordings, module_storage
from learn2adapt.types import Window, right_aligned_mask

#: Validation segments drawn once per fit (fixed, so epochs are comparable; bounded cost).
VAL_SEGMENTS = 2048
#: Segments per validation pass (bounds memory).
VAL_CHUNK = 256


class Calibration(nn.Module):
    """Figures of the last fit that online rules need (checkpointed with the model)."""

    post_adapt_mse: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("post_adapt_mse", torch.tensor(0.0))  # 0: not measured yet


class GrBAL(StepPredictors, AdaptationRule):
    """MLP dynamics meta-trained to adapt with gradient steps on the recent past.

    ``module`` holds the dynamics model (``model.*``, with its normaliser) and the step
    size(s) (``step_size.*``: a buffer when fixed, ``log alpha`` parameters when learned),
    so a checkpoint restores both.
    """

    algo = "grbal"
    adapts_online = True
    records_online = True

    def _build(self) -> None:
        if self.adapt_cfg.past < 1 or self.adapt_cfg.future < 1:
            raise ConfigError("GrBAL needs past (M) >= 1 and future (K) >= 1")
        if self.adapt_cfg.inner_steps < 1:
            raise ConfigError("GrBAL needs inner_steps >= 1")
        self.model: MLPDynamics | EnsembleDynamics = make_dynamics(self.obs_dim, self.act_dim, self.model_cfg)
        shapes = {n: p.shape for n, p in self.model.params().items()}
        self.step_size = StepSize(self.adapt_cfg.step_size, self.adapt_cfg.inner_lr, shapes)
        #: How often ``adaptation.guard`` reverted an online step (read per task by the evaluation).
        self.guard_count = GuardCount()
        #: The post-adaptation validation MSE of the last fit (what MOLe's likelihood takes as variance).
        self.calibration = Calibration()
        #: The validation pass's recordings (:meth:`record_graphs`); None: it runs eagerly.
        self.validation_graphs: Recordings | None = None
        self._validation_key: tuple | None = None
        self._module = nn.ModuleDict(
            {"model": self.model, "step_size": self.step_size, "calibration": self.calibration}
        ).to(self.device)
        #: Inner-update implementation for meta-training (see inner_update); checked now.
        self.impl = resolve_impl(self.adapt_cfg.inner_impl, self.step_size, self.adapt_cfg.inner_steps)
        if self.members and self.impl not in ("lowrank", "batched"):
            raise ConfigError("GrBAL on an ensemble uses adaptation.inner_impl = lowrank or batched (or auto)")
        if self.members and self.adapt_cfg.online_layers:
            raise ConfigError("adaptation.online_layers is implemented for a single model (model.ensemble=1)")
        if self.adapt_cfg.meta_loss == "open-loop":
            if self.members:
                raise ConfigError("adaptation.meta_loss=open-loop is implemented for a single model (model.ensemble=1)")
            # The rollout needs theta' itself, which the fused low-rank and reference paths never form.
            if self.adapt_cfg.inner_impl in ("lowrank", "loop"):
                raise ConfigError("adaptation.meta_loss=open-loop needs adaptation.inner_impl = batched, vmap or auto")
            self.impl = "vmap" if self.impl == "vmap" else "batched"

    @property
    def members(self) -> int:
        """Ensemble members (0: one deterministic model)."""
        return self.model.net.members

    @property
    def module(self) -> nn.Module:
        return self._module

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Checkpoints written before the calibration buffer existed load with it unknown (0).
        module = dict(state["module"])
        module.setdefault("calibration.post_adapt_mse", torch.tensor(0.0))
        super().load_state_dict({**state, "module": module})

    # --- meta-training ------------------------------------------------------------------------
    def meta_loss(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        first_order: bool | None = None,
        impl: str | None = None,
        past_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The meta-training loss on segments ``(B, M+K, ...)``: post-adaptation MSE on the K future
        transitions, or for an ensemble their Gaussian NLL (PE-TS's loss, after the inner step).

        An ensemble takes ``B = members x S`` segments, member-major: member ``b`` adapts on and is
        scored on rows ``b S .. (b + 1) S - 1`` (its own resample, :meth:`SegmentSampler.member_epoch`).
        ``past_mask (B, M)`` marks the past transitions adapted on (None: all).
        """
        if self.members:
            obs, act, next_obs = (t.view(self.members, -1, *t.shape[1:]) for t in (obs, act, next_obs))
            past_mask = None if past_mask is None else past_mask.view(self.members, -1, past_mask.shape[-1])
        out, target = self._adapted_outputs(obs, act, next_obs, past_mask, first_order, impl)
        if isinstance(self.model, EnsembleDynamics):
            return self.model.gaussian_nll(out, target)
        return (out - target).pow(2).mean()

    def _adapted_outputs(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        past_mask: torch.Tensor | None,
        first_order: bool | None = None,
        impl: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's outputs on the K future transitions after adapting on the M past ones, and
        their normalised targets (inputs ``(..., M+K, dim)``; an ensemble's ``(members, S, M+K, dim)``)."""
        cfg = self.adapt_cfg
        m = cfg.past
        first_order = cfg.first_order if first_order is None else first_order
        x, y = normalised(self.model, obs, act, next_obs)
        if cfg.meta_loss == "open-loop":
            adapt = adapt_vmap if self.impl == "vmap" else adapt_batched
            theta = adapt(
                self.model.net, self.model.params(), x[..., :m, :], y[..., :m, :], past_mask, self.step_size,
                cfg.inner_steps, first_order,
            )  # fmt: skip
            return self._open_loop(theta, obs, act, m), y[..., m:, :]
        out = adapted_forward(
            self.model.net,
            self.model.params(),
            x[..., :m, :],
            y[..., :m, :],
            past_mask,
            x[..., m:, :],
            self.step_size,
            cfg.inner_steps,
            first_order,
            impl or self.impl,
        )
        return out, y[..., m:, :]

    def _open_loop(self, theta: Params, obs: torch.Tensor, act: torch.Tensor, m: int) -> torch.Tensor:
        """``adaptation.meta_loss=open-loop``: the adapted model rolled out from the first future
        state under the recorded actions, each of its states ``s'_k`` written as the normalised
        change from the true state ``s_k``. Against the one-step target ``norm(s_{k+1} - s_k)`` the
        difference is then ``(s'_{k+1} - s_{k+1}) / std(delta)``: the one-step error at ``k = 0``
        and the compounded error the planner sees after that, in the same units."""
        assert isinstance(self.model, MLPDynamics)  # _build refuses an ensemble
        norm, true = self.model.normalizer, obs[..., m:, :]
        state, out = true[..., :1, :], []
        for k in range(true.shape[-2]):
            state = self.model.predict(state, act[..., m + k : m + k + 1, :], theta)
            out.append(norm.norm_delta(state - true[..., k : k + 1, :]))
        return torch.cat(out, dim=-2)

    def post_adapt_error(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """MSE of the adapted prediction on the K future transitions of segments ``(S, M+K, ...)``
        (an ensemble: of its members' mean, every member adapted on the same past): the validation measure."""
        if self.members:
            obs, act, next_obs = (t.expand(self.members, *t.shape) for t in (obs, act, next_obs))
        # First order: same forward value as second order, without building its graph.
        out, target = self._adapted_outputs(obs, act, next_obs, None, first_order=True)
        pred = out[..., : self.obs_dim]
        if self.members:
            pred, target = pred.mean(0), target[0]
        return (pred - target).pow(2).mean()

    def fit(self, buffer: TrajectoryBuffer, rng: np.random.Generator, progress: bool = True) -> dict[str, float]:
        opt = self.begin_fit()
        self.fit_normalizer(buffer)
        cfg = self.adapt_cfg
        length = cfg.past + cfg.future
        train_mask, val_mask = split_episodes(buffer, self.fit_cfg.val_fraction, rng, self.fit_cfg.val_split)
        train_starts, val_starts = split_segment_starts(buffer, length, train_mask, val_mask, rng, VAL_SEGMENTS)
        sampler = SegmentSampler(buffer, length, self.device)
        num_train = int(train_mask.sum())

        # An ensemble: every member meta-trains on its own bootstrap resample of the segments (PETS).
        boot = bootstrap_indices(train_starts, self.members, rng) if self.members else None

        def epoch_batches() -> Iterator[Window]:
            if boot is not None:
                return sampler.member_epoch(boot, cfg.meta_batch, rng, num_train, self.fit_cfg.segment_epoch)
            return sampler.epoch(train_starts, cfg.meta_batch, rng, num_train, self.fit_cfg.segment_epoch)

        chunk = VAL_CHUNK // max(1, self.members)  # an ensemble scores every segment with every member
        if self.impl != "lowrank":  # per-segment weights (B, in, out): bound them to ~64 MB a layer
            largest = max(p.numel() for p in self.model.params().values())
            chunk = max(1, min(chunk, (1 << 24) // largest))
        val_batches = sampler.chunks(val_starts, chunk)

        def val_loss() -> float:
            return self.validation_losses(val_batches)["after"]

        def batch_loss(batch: Window) -> torch.Tensor:
            return self.meta_loss(
                batch.obs, batch.act, batch.next_obs, past_mask=self._short_past_mask(len(batch), rng)
            )

        result = fit_early_stopping(
            opt, epoch_batches, batch_loss, val_loss, self.fit_cfg, desc="meta-train GrBAL", progress=progress
        )
        metrics = result.metrics()
        # The kept weights' post-adaptation score is the fit's own (no second adapted pass).
        losses = self.validation_losses(val_batches, after=False)
        self.calibration.post_adapt_mse.fill_(result.val_loss)
        metrics.update({"fit/val_loss_before_adapt": losses["before"], "fit/val_loss_after_adapt": result.val_loss})
        metrics.update({f"fit/{k}": v for k, v in self.step_size.stats().items()})
        return metrics

    def _short_past_mask(self, batch: int, rng: np.random.Generator) -> torch.Tensor | None:
        """Right-aligned past masks for the windows :func:`short_past_counts` cuts (None: all full)."""
        m = self.adapt_cfg.past
        count = short_past_counts(batch, m, self.adapt_cfg.short_past, rng)
        return None if count is None else right_aligned_mask(torch.as_tensor(count, device=self.device), m)

    def validation_losses(self, batches: list[Window], after: bool = True) -> dict[str, float]:
        """Mean future-K loss of segments before and after adaptation (segment-weighted);
        ``after=False`` skips the adapted pass (the dear one) and reports ``after`` as NaN.

        After :meth:`record_graphs` the pass with ``after`` is one replay of a graph over the
        batches where they are (recorded once per fit, as the batches are), and one read of
        every batch's two losses, summed as the eager pass sums them."""
        m = self.adapt_cfg.past
        total = {"before": 0.0, "after": 0.0 if after else math.nan}
        n = 0
        recorded = self._recorded_validation(batches) if after and batches else None
        for i, w in enumerate(batches):
            obs, act, nxt = w.obs, w.act, w.next_obs
            if recorded is not None:
                total["after"] += recorded[i][0] * obs.shape[0]
                total["before"] += recorded[i][1] * obs.shape[0]
                n += obs.shape[0]
                continue
            if after:
                with torch.enable_grad():
                    total["after"] += float(self.post_adapt_error(obs, act, nxt).detach()) * obs.shape[0]
            with torch.no_grad():
                total["before"] += float(self.model.loss(obs[:, m:], act[:, m:], nxt[:, m:])) * obs.shape[0]
            n += obs.shape[0]
        return {k: v / max(n, 1) for k, v in total.items()}

    def _batch_losses(self, batches: list[Window]) -> torch.Tensor:
        """Every batch's post-adaptation and unadapted future loss, ``(len(batches), 2)``, on the device."""
        m, rows = self.adapt_cfg.past, []
        for w in batches:
            obs, act, nxt = w.obs, w.act, w.next_obs
            with torch.enable_grad():
                after = self.post_adapt_error(obs, act, nxt).detach()
            with torch.no_grad():
                rows.append(torch.stack([after, self.model.loss(obs[:, m:], act[:, m:], nxt[:, m:])]))
        return torch.stack(rows)

    def _recorded_validation(self, batches: list[Window]) -> list[list[float]] | None:
        """:meth:`_batch_losses` by a replay (None: not recorded, or recording failed)."""
        graphs = self.validation_graphs
        if graphs is None:
            return None
        data = [t for w in batches for t in (w.obs, w.act, w.next_obs)]
        key = tuple((t.data_ptr(), tuple(t.shape)) for t in data)
        if key != self._validation_key:  # a new fit's batches: the last fit's graph is dropped
            graphs.clear()
            self._validation_key = key
        out = graphs.call(
            lambda: self._batch_losses(batches), key, module_storage(self.module), [], keep=lambda: data,
            device=self.device,
        )  # fmt: skip
        return None if out is None else out.tolist()

    def record_graphs(self, capture: Capture | None = None) -> None:
        super().record_graphs(capture)
        if self.validation_graphs is None:
            self.validation_graphs = Recordings(capture, "validation pass", "it runs eagerly from now on")

    # Online adaptation: predictor and mean_predictor come from StepPredictors (adaptation/online.py).
