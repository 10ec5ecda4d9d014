"""Recurrent adaptive dynamics model of ReBAL (Nagabandi, Clavera et al., ICLR 2019, Sec. 4.2).

A GRU or LSTM reads past transitions ``(norm(s), norm(a), norm(s' - s))``; its
hidden state ``h`` plays the role of the adapted parameters theta'. A ReLU MLP
head predicts the normalised state change of a *future* transition from
``(norm(s), norm(a), h)``.

The head's first layer is split by input rows::

    z0 = [norm(s), norm(a)] @ W_sa  +  (h @ W_h + b0)

The second term depends only on the hidden state, so :meth:`RecurrentDynamics.context`
computes it once per hidden state (once per plan at run time, once per segment in
training) and :meth:`RecurrentDynamics.head` adds it, broadcast, to every candidate and
step: planning then costs one ``(d + a) x H1`` matmul in the first layer, exactly like
the plain MLP dynamics model. Training and planning share this code path.

Hidden states are single tensors of shape ``(B, state_size)``: ``h`` for a GRU and
``[h, c]`` concatenated for an LSTM, so masking, expanding and indexing are the same
for both cells; only ``h`` is fed to the head.

PE-TS + ReBAL (``model.ensemble = B``): one recurrent network, its state fed to every member of
an ensemble of Gaussian heads (``MLP(members=B)``, mean and log-variance as in
:mod:`learn2adapt.models.ensemble`); head tensors then carry a leading members axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from learn2adapt.errors import ConfigError, UnknownName
from learn2adapt.models.config import ModelConfig
from learn2adapt.models.ensemble import GaussianOutput, from_member_rows, to_member_rows
from learn2adapt.models.mlp import MLP, linear
from learn2adapt.models.normalizer import Normalizer

#: Recurrent cells accepted by :class:`RecurrentDynamics`.
CELLS = ("gru", "lstm")
#: Scale of the head's output layer at initialisation: the untrained model predicts
#: almost the mean state change, so early losses (and gradients into the RNN) stay small.
HEAD_OUTPUT_SCALE = 0.01


class RecurrentDynamics(GaussianOutput, nn.Module):
    """Normaliser + one-layer GRU/LSTM over past transitions + MLP head.

    Args:
        obs_dim: observation size d.
        act_dim: action size a.
        cfg: head options (hidden widths, activation), as for the MLP model.
        cell: ``"gru"`` or ``"lstm"``.
        hidden_size: recurrent hidden size.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: ModelConfig, cell: str = "gru", hidden_size: int = 256) -> None:
        super().__init__()
        if cell not in CELLS:
            raise UnknownName(f"unknown recurrent cell {cell!r}: use one of {', '.join(CELLS)}")
        if hidden_size < 1:
            raise ConfigError("rnn_hidden must be >= 1")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.cell, self.hidden_size = cell, int(hidden_size)
        self.normalizer = Normalizer(obs_dim, act_dim)
        rnn_cls = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(2 * obs_dim + act_dim, self.hidden_size, num_layers=1, batch_first=True)
        #: Ensemble members of the head (0: one deterministic head).
        self.members = int(cfg.ensemble) if cfg.ensemble > 1 else 0
        out = 2 * obs_dim if self.members else obs_dim
        self.head_net = MLP(obs_dim + act_dim + self.hidden_size, out, cfg.hidden, cfg.activation, self.members)
        if self.members:
            self.init_logvar_bounds(cfg.nll_beta)
        self.reset_parameters()

    # --- parameters ---------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Width of a hidden state tensor: ``H`` (GRU) or ``2H`` (LSTM: ``[h, c]``)."""
        return self.hidden_size * (2 if self.cell == "lstm" else 1)

    def reset_parameters(self) -> None:
        """A stable start for recurrent training (the paper notes ReBAL diverges easily).

        Orthogonal recurrent matrices (per gate) keep the Jacobian of ``h_t -> h_{t+1}``
        norm-preserving, so gradients through the M steps neither explode nor vanish at
        the start; Xavier input matrices; zero biases, except the LSTM forget gate at 1
        (Jozefowicz et al., 2015) so the cell remembers by default; a small head output
        layer so initial predictions are near the mean state change.
        """
        H = self.hidden_size
        gates = 3 if self.cell == "gru" else 4
        with torch.no_grad():
            for g in range(gates):
                rows = slice(g * H, (g + 1) * H)
                nn.init.xavier_uniform_(self.rnn.weight_ih_l0[rows])
                nn.init.orthogonal_(self.rnn.weight_hh_l0[rows])
            self.rnn.bias_ih_l0.zero_()
            self.rnn.bias_hh_l0.zero_()
            if self.cell == "lstm":  # gate order i, f, g, o
                self.rnn.bias_ih_l0[H : 2 * H].fill_(1.0)
            last = self.head_net.num_layers - 1
            getattr(self.head_net, f"w{last}").mul_(HEAD_OUTPUT_SCALE)
            getattr(self.head_net, f"b{last}").zero_()
            for i in range(self.head_net.num_layers):  # zero biases: no arbitrary offsets into ReLUs
                if i != last:
                    getattr(self.head_net, f"b{i}").zero_()

    # --- reading transitions (adaptation) -------------------------------------------------------
    def features(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """RNN input of transitions: ``[norm(s), norm(a), norm(s' - s)]``, shape ``(..., 2d + a)``."""
        n = self.normalizer
        return torch.cat([n.norm_obs(obs), n.norm_act(act), n.norm_delta(next_obs - obs)], dim=-1)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """The state before any transition was read (count 0): zeros ``(batch, state_size)``."""
        w = cast(torch.Tensor, self.rnn.weight_hh_l0)
        return torch.zeros(batch, self.state_size, dtype=w.dtype, device=w.device)

    def _to_torch(self, state: torch.Tensor):
        """``(B, S)`` -> the ``hx`` argument of ``nn.GRU`` / ``nn.LSTM`` (``(1, B, H)`` tensors)."""
        H = self.hidden_size
        if self.cell == "gru":
            return state.unsqueeze(0).contiguous()
        return state[:, :H].unsqueeze(0).contiguous(), state[:, H:].unsqueeze(0).contiguous()

    def _from_torch(self, hx) -> torch.Tensor:
        if self.cell == "gru":
            return hx[0]
        return torch.cat([hx[0][0], hx[1][0]], dim=-1)

    def hidden(self, state: torch.Tensor) -> torch.Tensor:
        """The part of a state fed to the head: ``h`` (an LSTM's cell ``c`` is not)."""
        return state[..., : self.hidden_size]

    def read(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        count: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The state after reading windows of transitions, oldest first.

        Args:
            obs, act, next_obs: ``(B, T, ...)`` windows.
            count: ``(B,)`` number of valid transitions at the *end* of each window (the
                right-aligned layout of :class:`~learn2adapt.data.recent_history.Window`);
                padding rows before them are ignored entirely. None: all ``T`` valid.
            state: start state ``(B, state_size)``; None: :meth:`initial_state`.

        Returns:
            ``(B, state_size)``; rows with ``count == 0`` keep the start state.
        """
        B, T = obs.shape[:2]
        start = self.initial_state(B) if state is None else state
        if T == 0:
            return start
        x = self.features(obs, act, next_obs)
        if count is None:
            _, hx = self.rnn(x, self._to_torch(start))
            return self._from_torch(hx)
        count = count.to(device=x.device, dtype=torch.long).clamp(0, T)
        # Left-align the valid rows and pack them with their lengths: the RNN then runs
        # exactly over each row's valid transitions in one call (no per-step Python loop).
        idx = (torch.arange(T, device=x.device)[None, :] + (T - count)[:, None]).clamp(max=T - 1)
        x = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        packed = pack_padded_sequence(x, count.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, hx = self.rnn(packed, self._to_torch(start))
        return torch.where((count > 0)[:, None], self._from_torch(hx), start)

    def step(self, state: torch.Tensor, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Advance ``(B, state_size)`` by one transition per row (shapes ``(B, d)``...)."""
        x = self.features(obs, act, next_obs).unsqueeze(1)
        _, hx = self.rnn(x, self._to_torch(state))
        return self._from_torch(hx)

    def read_sequence(
        self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every intermediate state, for whole-trajectory training.

        Returns:
            ``before``: ``(B, T, H)`` the head input ``h`` *before* each transition (the
            first is ``state``'s), i.e. the context with which transition ``t`` is predicted;
            ``final``: ``(B, state_size)`` the state after all ``T`` transitions.
        """
        out, hx = self.rnn(self.features(obs, act, next_obs), self._to_torch(state))
        before = torch.cat([self.hidden(state).unsqueeze(1), out[:, :-1]], dim=1)
        return before, self._from_torch(hx)

    # --- predicting (the head) ------------------------------------------------------------------
    def context(self, h: torch.Tensor) -> torch.Tensor:
        """The hidden-state part of the head's first layer, ``h @ W_h + b0``: ``(..., H1)``.

        An ensemble takes ``h (B, G, H)``, one row of states per member, and returns ``(B, G, H1)``.
        """
        n_in = self.obs_dim + self.act_dim
        return linear(h, self.head_net.w0[..., n_in:, :], cast(torch.Tensor, self.head_net.b0))

    def inputs(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.normalizer.norm_inputs(obs, act)

    def head(self, obs: torch.Tensor, act: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Normalised predicted state change (a deterministic head).

        Args:
            obs: ``(B, N, d)`` states.
            act: ``(B, N, a)`` actions.
            ctx: :meth:`context` of the hidden state, ``(B, 1, H1)`` (shared across N) or
                ``(B, N, H1)``.
        """
        return self.head_rows(self.inputs(obs, act), ctx)

    def head_rows(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """The head on normalised inputs ``x``; an ensemble's ``x (B, G, R, in)`` with ``ctx (B, G | 1, 1, H1)``
        gives raw outputs ``(B, G, R, 2 d)`` (member ``b`` on its own rows)."""
        net = self.head_net
        w_sa = net.w0[..., : self.obs_dim + self.act_dim, :]
        if self.members:
            b, g, r, n_in = x.shape
            z = torch.bmm(x.reshape(b, g * r, n_in), w_sa).view(b, g, r, -1) + ctx
        elif x.dim() == 3 and ctx.dim() == 3:
            # One fused kernel, ctx broadcast over N (an expanded view, never copied).
            z = torch.baddbmm(ctx, x, w_sa.expand(x.shape[0], -1, -1))
        else:
            z = torch.matmul(x, w_sa) + ctx
        for i in range(1, net.num_layers):
            z = linear(net.activation(z), getattr(net, f"w{i}"), getattr(net, f"b{i}"))
        return z

    def member_context(self, h: torch.Tensor) -> torch.Tensor:
        """An ensemble's :meth:`context` of states ``h (G, H)`` shared by every member: ``(B, G, 1, H1)``."""
        return self.context(h.expand(self.members, *h.shape)).unsqueeze(2)

    def sample_rows(self, obs: torch.Tensor, act: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """An ensemble's sampled normalised state change for ``obs (G, R, d)``, row ``r`` on member
        ``r mod B`` (trajectory sampling); ``ctx`` from :meth:`member_context`."""
        x = self.inputs(obs, act)
        out = self.head_rows(to_member_rows(x, self.members), ctx)
        return from_member_rows(self.sample(out), x.shape[1])

    def mean_rows(self, obs: torch.Tensor, act: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """An ensemble's mean normalised state change over members for ``obs (G, R, d)``."""
        x = self.inputs(obs, act)
        return self.head_rows(x.expand(self.members, *x.shape), ctx)[..., : self.obs_dim].mean(0)

    def predict_context(self, obs: torch.Tensor, act: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Next observations ``(E, N, d)`` from a plan's context ``params["context"]``: :meth:`context`
        ``(E | 1, 1, H1)`` of the adapted states, or an ensemble's :meth:`member_context`
        ``(B, E | 1, 1, H1)`` (sampled, trajectory sampling). ReBAL's predictor is this method over
        that tensor (an :class:`~learn2adapt.types.AdaptedPredictor`, which a CUDA graph records)."""
        return self._predict_context(obs, act, params["context"], self.sample_rows)

    def predict_context_mean(
        self, obs: torch.Tensor, act: torch.Tensor, params: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """:meth:`predict_context`, an ensemble's members' mean instead of a sample."""
        return self._predict_context(obs, act, params["context"], self.mean_rows)

    def _predict_context(
        self, obs: torch.Tensor, act: torch.Tensor, ctx: torch.Tensor, rows: Callable[..., torch.Tensor]
    ) -> torch.Tensor:
        denorm = self.normalizer.denorm_delta
        if not self.members:
            return obs + denorm(self.head(obs, act, ctx))
        grouped = obs.reshape(obs.shape[0] if ctx.shape[1] > 1 else 1, -1, obs.shape[-1])
        delta = rows(grouped, act.reshape(*grouped.shape[:2], -1), ctx)
        return obs + denorm(delta.reshape(obs.shape))

    def forward(self, obs: torch.Tensor, act: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Normalised predicted state change from ``h`` ``(B, H)`` (shared across N) or ``(B, N, H)``."""
        ctx = self.context(h)
        return self.head(obs, act, ctx.unsqueeze(1) if ctx.dim() == 2 else ctx)

    def target(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The regression target: normalised state change."""
        return self.normalizer.norm_delta(next_obs - obs)

    def segment_loss(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        next_obs: torch.Tensor,
        past: int,
        count: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The ReBAL objective on ``(B, M + K, ...)`` segments: MSE on the K future transitions.

        The hidden state after reading the first ``past`` transitions (or only the last
        ``count[b]`` of them) predicts each future transition one step ahead from its true
        ``(s, a)`` (Nagabandi, Clavera et al., 2019, Eq. 5 with ``u_psi`` a recurrent update).
        """
        state = self.read(obs[:, :past], act[:, :past], next_obs[:, :past], count)
        target = self.target(obs[:, past:], next_obs[:, past:])
        if self.members:  # member-major segments: member b's are rows b S .. (b + 1) S - 1
            h = self.hidden(state).view(self.members, -1, self.hidden_size)
            x = self.inputs(obs[:, past:], act[:, past:])
            out = self.head_rows(x.view(self.members, -1, *x.shape[1:]), self.context(h).unsqueeze(2))
            return self.gaussian_nll(out, target.view(self.members, -1, *target.shape[1:]))
        pred = self(obs[:, past:], act[:, past:], self.hidden(state))
        return (pred - target).pow(2).mean()

    def segment_error(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor, past: int) -> torch.Tensor:
        """The validation measure: MSE of the prediction after reading the M past transitions (an
        ensemble: of its members' mean, every member reading the same segments)."""
        if not self.members:
            return self.segment_loss(obs, act, next_obs, past)
        state = self.read(obs[:, :past], act[:, :past], next_obs[:, :past])
        pred = self.mean_rows(obs[:, past:], act[:, past:], self.member_context(self.hidden(state)))
        return (pred - self.target(obs[:, past:], next_obs[:, past:])).pow(2).mean()
