"""ReBAL: recurrence-based adaptive learner (Nagabandi, Clavera et al., ICLR 2019, Sec. 4.2).

The update rule ``u_psi`` is a recurrent network: a GRU/LSTM reads the M most recent
transitions and its hidden state stands for the adapted parameters theta'; a head
predicts the next state from ``(s, a, h)`` (see :mod:`learn2adapt.models.recurrent`).

Training (``adaptation.rnn_training``):

* ``segments`` (default, the paper's objective, Eq. 5): random segments of M + K
  consecutive transitions; the hidden state after the M past ones predicts the K future
  ones; loss = MSE on the future. A fraction ``short_past`` of segments see only
  the last ``c < M`` past transitions, because online the first M steps of every
  episode have fewer than M transitions to read.
* ``tbptt`` (the official code): whole trajectories, ``meta_batch`` at a time, cut
  into windows of ``tbptt_length`` steps; every transition is predicted from the hidden
  state of everything before it in its episode; the state is carried across windows
  with gradients truncated at window boundaries. Each episode is read from a random
  step of its first window, so the initial state also meets mid-episode transitions.
  Caveat: online the state is rebuilt from the last M transitions only (see
  :class:`ReBAL`), a shorter context than the whole-episode one this mode trains
  with: a train/run mismatch the segment objective does not have. On the synthetic
  task family of the tests both modes reach the same error; on dynamics where the
  last M transitions identify the task less well than a whole episode, prefer
  ``segments`` or a larger M.

Both are early-stopped on the same validation score: the post-adaptation K-step loss
on held-out episodes' segments (M past read from the initial state), which is exactly
how the model is used online.

PE-TS + ReBAL (``model.ensemble = B``, ``segments`` training only): the recurrent state feeds
every member of an ensemble of Gaussian heads; each member is trained, by the Gaussian NLL, on
its own bootstrap resample of the segments (the RNN on all of them), and the planner samples
trajectories from the members (TS-inf), all reading the same state.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from learn2adapt.adaptation.base import AdaptationRule
from learn2adapt.data.segment_sampler import SegmentSampler, short_past_counts, split_segment_starts
from learn2adapt.data.trajectory_buffer import TrajectoryBuffer, split_episodes
from learn2adapt.errors import ConfigError, UnknownName
from learn2adapt.models.ensemble import bootstrap_indices
from learn2adapt.models.fitting import fit_early_stopping
from learn2adapt.models.recurrent import CELLS, RecurrentDynamics
from learn2adapt.types import AdaptedPredictor, PredictFn, Window

#: Accepted values of ``adaptation.rnn_training``.
TRAINING_MODES = ("segments", "tbptt")
#: Validation segments drawn once per fit (a fixed set keeps epochs comparable and bounds
#: the cost of validation on large datasets).
VAL_SEGMENTS = 2048
#: Segments per forward pass during validation (bounds memory).
VAL_CHUNK = 512


class ReBAL(AdaptationRule):
    """Recurrent adaptive dynamics model with MPC-ready online adaptation.

    Online (:meth:`predictor`), the hidden state is **rebuilt** from the last M
    transitions at every call, starting from the initial state, rather than advanced
    incrementally through the episode. Why: the interface hands each call only the
    last M transitions and promises no adapted state outlives a call (so evaluation
    calls, resets and retrains cannot leave a stale state behind, as the official code's
    stale adapted weights did); and it is the situation the segment objective trains
    for (the context is exactly the last ``min(count, M)`` transitions read from the
    initial state), so train and run time match. The cost is M recurrent steps for E
    rows per plan, negligible next to the N x H head evaluations.

    During planning the hidden state is frozen (the analogue of theta' held fixed over
    the horizon): all N candidates and H steps use the state built from real
    transitions. Advancing it with predicted transitions would feed the RNN inputs it
    never saw in training (its own predictions) and add a recurrent step per candidate
    and step, about doubling the plan's cost. The state's contribution to the head's
    first layer, ``h @ W_h + b0``, is computed once per plan, shape ``(E, 1, H1)``, and
    broadcast across the N candidates (an expand, not a copy).
    """

    algo = "rebal"
    adapts_online = True

    def _build(self) -> None:
        if self.adapt_cfg.rnn not in CELLS:
            raise UnknownName(f"unknown adaptation.rnn {self.adapt_cfg.rnn!r}; available: {', '.join(CELLS)}")
        if self.adapt_cfg.rnn_training not in TRAINING_MODES:
            raise UnknownName(
                f"unknown adaptation.rnn_training {self.adapt_cfg.rnn_training!r}; available: {', '.join(TRAINING_MODES)}"
            )
        if self.adapt_cfg.past < 1 or self.adapt_cfg.future < 1:
            raise ConfigError("ReBAL needs adaptation.past (M) >= 1 and adaptation.future (K) >= 1")
        if self.adapt_cfg.meta_batch < 1 or self.adapt_cfg.tbptt_length < 1:
            raise ConfigError("adaptation.meta_batch and adaptation.tbptt_length must be >= 1")
        if not 0.0 <= self.adapt_cfg.short_past <= 1.0:
            raise ConfigError("adaptation.short_past must be in [0, 1]")
        if self.model_cfg.ensemble > 1 and self.adapt_cfg.rnn_training != "segments":
            raise ConfigError("ReBAL on an ensemble trains on segments: set adaptation.rnn_training=segments")
        self.model = RecurrentDynamics(
            self.obs_dim, self.act_dim, self.model_cfg, self.adapt_cfg.rnn, self.adapt_cfg.rnn_hidden
        ).to(self.device)

    @property
    def module(self) -> nn.Module:
        return self.model

    # --- training -------------------------------------------------------------------------
    def fit(self, buffer: TrajectoryBuffer, rng: np.random.Generator, progress: bool = True) -> dict[str, float]:
        """Meta-train on all of ``buffer``; early stopping on the post-adaptation validation loss.

        Raises:
            models.fitting.NonFiniteLossError: a loss became NaN/inf (the message names the epoch).
            NotEnoughSegments: no training episode is long enough for one M + K segment.
        """
        cfg = self.adapt_cfg
        opt = self.begin_fit()
        self.fit_normalizer(buffer)
        train_mask, val_mask = split_episodes(buffer, self.fit_cfg.val_fraction, rng, self.fit_cfg.val_split)
        length = cfg.past + cfg.future
        train_starts, val_starts = split_segment_starts(buffer, length, train_mask, val_mask, rng, VAL_SEGMENTS)
        sampler = SegmentSampler(buffer, length, self.device)
        val_loss = self._val_loss_fn(sampler.chunks(val_starts, VAL_CHUNK // max(1, self.model.members)))

        if cfg.rnn_training == "segments":
            epoch_batches, batch_loss = self._segment_objective(sampler, train_starts, int(train_mask.sum()), rng)
        else:
            epoch_batches, batch_loss = self._tbptt_objective(buffer, sampler, train_mask, rng)
        desc = f"fit ReBAL ({cfg.rnn}, {cfg.rnn_training})"
        result = fit_early_stopping(
            opt, epoch_batches, batch_loss, val_loss, self.fit_cfg, desc=desc, progress=progress
        )
        return result.metrics()

    def _val_loss_fn(self, batches: list[Window]):
        """Post-adaptation K-step loss on a fixed set of validation segments (full M past)."""
        past = self.adapt_cfg.past
        total_segments = sum(len(w) for w in batches)

        def val_loss() -> float:
            total = 0.0
            with torch.no_grad():
                for w in batches:
                    total += len(w) * float(self.model.segment_error(w.obs, w.act, w.next_obs, past))
            return total / total_segments

        return val_loss

    def _segment_objective(self, sampler: SegmentSampler, starts: np.ndarray, num_train: int, rng: np.random.Generator):
        """Batches of ``meta_batch`` segments and the paper's M-past / K-future loss.

        ``num_train``: training transitions (an epoch's length, see ``fit.segment_epoch``).
        """
        cfg = self.adapt_cfg
        M = cfg.past
        # An ensemble: every member's head on its own bootstrap resample of the segments (PETS).
        members = self.model.members
        boot = bootstrap_indices(starts, members, rng) if members else None

        def epoch_batches() -> Iterator[Window]:
            if boot is not None:
                return sampler.member_epoch(boot, cfg.meta_batch, rng, num_train, self.fit_cfg.segment_epoch)
            return sampler.epoch(starts, cfg.meta_batch, rng, num_train, self.fit_cfg.segment_epoch)

        def batch_loss(seg: Window) -> torch.Tensor:
            cut = short_past_counts(len(seg), M, cfg.short_past, rng)
            count = None if cut is None else torch.as_tensor(cut, device=self.device)
            return self.model.segment_loss(seg.obs, seg.act, seg.next_obs, M, count)

        return epoch_batches, batch_loss

    def _tbptt_objective(
        self, buffer: TrajectoryBuffer, sampler: SegmentSampler, train_mask: np.ndarray, rng: np.random.Generator
    ):
        """Whole-trajectory truncated BPTT (the official ReBAL code's training).

        Each batch is one window of ``tbptt_length`` steps of ``meta_batch`` episodes
        (padded to the longest, padding masked out of the loss); the state is carried,
        detached, from one window of a group to the next and reset at a new group.
        Transition ``t`` is predicted from the state before it, as online.
        """
        cfg = self.adapt_cfg
        slices = buffer.episode_slices()
        episodes = [s for s in slices if train_mask[s.start]] or slices
        obs, act, nxt = sampler.tensors
        L = cfg.tbptt_length
        carried: dict[str, torch.Tensor] = {}

        def epoch_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
            order = rng.permutation(len(episodes))
            for g in range(0, len(order), cfg.meta_batch):
                group = [episodes[i] for i in order[g : g + cfg.meta_batch]]
                lengths = np.array([s.stop - s.start for s in group])
                starts = np.array([s.start for s in group])
                # Start reading at a random step of the first window, not always at the
                # episode start: the initial state then also meets mid-episode transitions,
                # as it does online, where it reads the last M transitions of any step.
                offset = rng.integers(0, np.maximum(np.minimum(L, lengths - 1), 1))
                starts, lengths = starts + offset, lengths - offset
                steps = np.arange(lengths.max())
                idx = starts[:, None] + np.minimum(steps[None, :], lengths[:, None] - 1)
                mask = steps[None, :] < lengths[:, None]
                idx_t = torch.as_tensor(idx, device=self.device)
                mask_t = torch.as_tensor(mask, device=self.device)
                for w in range(0, steps.size, L):
                    yield idx_t[:, w : w + L], mask_t[:, w : w + L], w == 0

        def batch_loss(batch: tuple[torch.Tensor, torch.Tensor, bool]) -> torch.Tensor:
            idx, mask, first = batch
            state = self.model.initial_state(idx.shape[0]) if first else carried["state"].detach()
            o, a, n = obs[idx], act[idx], nxt[idx]
            before, carried["state"] = self.model.read_sequence(o, a, n, state)
            err = (self.model(o, a, before) - self.model.target(o, n)).pow(2).mean(-1)
            m = mask.to(err.dtype)
            return (err * m).sum() / m.sum().clamp(min=1.0)

        return epoch_batches, batch_loss

    # --- online use -----------------------------------------------------------------------
    def adapted_hidden(self, recent: Window | None) -> torch.Tensor:
        """Head input ``h`` after reading each environment's recent transitions, ``(E, H)``.

        Uses the last ``min(count, M)`` transitions (right-aligned windows); count 0 or
        ``recent is None`` gives the initial state (``(1, H)`` when ``recent`` is None).
        """
        model, M = self.model, self.adapt_cfg.past
        with torch.no_grad():
            if recent is None or recent.obs.shape[1] == 0:
                return model.hidden(model.initial_state(1))
            obs, act, nxt = recent.obs[:, -M:], recent.act[:, -M:], recent.next_obs[:, -M:]
            T = obs.shape[1]
            count: torch.Tensor | None = None if recent.count is None else recent.count.clamp(max=T)
            if count is not None and bool((count == T).all()):
                count = None  # every window full: the unpacked single-call path
            return model.hidden(model.read(obs, act, nxt, count))

    def predictor(self, recent: Window | None) -> PredictFn:
        """One-step model adapted to ``recent`` (see the class docstring for the design): the model's
        :meth:`~learn2adapt.models.recurrent.RecurrentDynamics.predict_context` over the context of
        the adapted states, computed once per plan (a CUDA graph records the plan over it)."""
        return AdaptedPredictor(self.model.predict_context, {"context": self._context(recent)})

    def mean_predictor(self, recent: Window | None) -> PredictFn:
        if self.model.members:
            return AdaptedPredictor(self.model.predict_context_mean, {"context": self._context(recent)})
        return self.predictor(recent)

    def _context(self, recent: Window | None) -> torch.Tensor:
        """The head's first-layer term of the adapted states, once per plan: ``(E | 1, 1, H1)``, an
        ensemble's ``(B, E | 1, 1, H1)`` (every member's, :meth:`~learn2adapt.models.recurrent.RecurrentDynamics.member_context`)."""
        model = self.model
        with torch.no_grad():
            h = self.adapted_hidden(recent)
            return model.member_context(h) if model.members else model.context(h).unsqueeze(1)
