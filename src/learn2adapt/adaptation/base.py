"""The interface every adaptation rule implements (MB, MB+DE, GrBAL, ReBAL).

An adaptation rule owns a dynamics model and knows two things: how to fit it
on the aggregated data, and how to turn the last M transitions of each running
episode into a one-step predictor for the planner. The planner and the
training loop only ever see this interface, so a new rule (for example a
mixture of models, docs/method.md Sec. 4) is one new module.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.adaptation.online import online_recordings
from learn2adapt.data.trajectory_buffer import TrajectoryBuffer
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.mlp import MLP
from learn2adapt.models.normalizer import Normalizer
from learn2adapt.planning.cuda_graph import Capture, Recordings
from learn2adapt.types import PredictFn, Window


def fused_adam(device: torch.device) -> bool | None:
    """Whether Adam runs its fused kernel on ``device`` (None: torch's default, ``foreach``).

    Why: a GrBAL ``paper`` meta-step updates 0.55M parameters; on the 2-core development CPU the
    default multi-tensor Adam took 1.4-1.7 ms of each step on one thread, the fused kernel 0.5-0.8
    ms, with the same arithmetic (parameters within 3e-7 after 200 steps; docs/experiments.md,
    "What the 1.5x target needs"). CPU kernels exist from torch 2.4 on.
    """
    if device.type == "cuda":
        return True
    if device.type == "cpu" and torch.torch_version.TorchVersion(torch.__version__) >= "2.4":
        return True
    return None


def _mark_parameters_changed(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Move every parameter's version counter after an optimiser step.

    Why: fused Adam writes the parameters without moving their version counters, and the
    oneDNN packed-weight cache (:mod:`learn2adapt.models.onednn`) takes an unmoved counter for
    unchanged weights: validation then scored the weights of the first pass all fit long.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            torch.autograd.graph.increment_version(p)


def adam(params: Any, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The Adam every fit uses: the fused kernel where there is one, its steps visible to the
    oneDNN packed-weight cache (:func:`_mark_parameters_changed`)."""
    optimizer = torch.optim.Adam(params, lr=lr, fused=fused_adam(device))
    optimizer.register_step_post_hook(_mark_parameters_changed)
    return optimizer


class AdaptationRule(ABC):
    """A dynamics model plus its rule for adapting to recent transitions.

    Subclasses implement :meth:`fit` and :meth:`predictor`, and put every
    tensor that must be checkpointed in :attr:`module` (plus :attr:`optimizer`).

    Args:
        obs_dim: observation size.
        act_dim: action size.
        model_cfg: network options.
        fit_cfg: training options.
        adapt_cfg: adaptation options.
        device: torch device.
    """

    #: Name used by ``--algo``.
    algo: ClassVar[str]
    #: The one-step model, built by :meth:`_build` (it carries the normaliser).
    model: Any
    #: Whether :meth:`predictor` uses the recent transitions.
    adapts_online: ClassVar[bool] = True
    #: Whether :meth:`predictor`'s adaptation step can be recorded (:meth:`record_graphs`).
    records_online: ClassVar[bool] = False
    #: The online adaptation step's recordings (:meth:`record_graphs`); None: it runs eagerly.
    online_graphs: Recordings | None = None

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        model_cfg: ModelConfig,
        fit_cfg: FitConfig,
        adapt_cfg: AdaptationConfig,
        device: str | torch.device = "cpu",
    ) -> None:
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.model_cfg, self.fit_cfg, self.adapt_cfg = model_cfg, fit_cfg, adapt_cfg
        self.device = torch.device(device)
        self.optimizer: torch.optim.Optimizer | None = None
        self._initial_state: dict[str, Any] | None = None
        self._build()

    def _build(self) -> None:
        """What a rule adds to the shared fields (its model, step sizes, checks of its options);
        called once by ``__init__``, which every rule shares. Extend with ``super()._build()``."""

    # --- what a rule must provide ---------------------------------------------------------
    @property
    @abstractmethod
    def module(self) -> nn.Module:
        """Every learned tensor of the rule (weights, normaliser, learned step sizes)."""

    @property
    def normalizer(self) -> Normalizer:
        """Statistics used to normalise inputs and targets: those of the one-step model ``self.model``."""
        return self.model.normalizer

    @abstractmethod
    def fit(self, buffer: TrajectoryBuffer, rng: np.random.Generator, progress: bool = True) -> dict[str, float]:
        """(Re)fit on all data in ``buffer``; returns metrics by name."""

    @abstractmethod
    def predictor(self, recent: Window | None) -> PredictFn:
        """A one-step model for the planner, adapted to ``recent``.

        ``recent`` holds, per environment, up to M transitions of the current
        episode (``count`` may be 0 at an episode start: then the rule predicts
        with its unadapted prior). Each call starts again from the fitted
        parameters, so no adapted state outlives the call.
        """

    def online_state(self, num_envs: int) -> Any:
        """Adaptation state that persists from step to step (None: the rule is stateless).

        A stateful rule (MOLe) returns an object with ``predictor(recent) -> PredictFn`` (called
        once per control step, after the newest transition arrived) and
        ``reset(env_index, episode_start=True)``; :class:`~learn2adapt.run.agent.MPCAgent`
        uses it instead of :meth:`predictor`.
        """
        return None

    # --- shared behaviour -----------------------------------------------------------------
    @property
    def history_length(self) -> int:
        """M: how many recent transitions :meth:`predictor` wants (0: none)."""
        return self.adapt_cfg.past if self.adapts_online else 0

    def mean_predictor(self, recent: Window | None) -> PredictFn:
        """The expected next state (prediction-error measurements): :meth:`predictor`, unless that samples."""
        return self.predictor(recent)

    def record_graphs(self, capture: Capture | None = None) -> None:
        """From now on, replay from recorded graphs what this rule can record (``planner.cuda_graph``
        on a GPU; ``capture``: how to record, default a CUDA graph): GrBAL's and MB+DE's online
        gradient step (:func:`~learn2adapt.adaptation.online.online_params`), and GrBAL's
        validation pass. Other rules ignore it."""
        if self.records_online and self.online_graphs is None:
            self.online_graphs = online_recordings(capture)

    def fit_normalizer(self, buffer: TrajectoryBuffer) -> None:
        """Statistics over the whole aggregated dataset (docs/method.md Sec. 2)."""
        self.normalizer.fit(buffer.obs, buffer.act, buffer.next_obs)

    def segment_errors(self, segments: Window, past: int, only: str | None = None) -> dict[str, float]:
        """Prediction error on the future part of segments, before vs after adaptation.

        The first ``past`` transitions of each segment are the context; the rest
        are predicted one step ahead, in normalised state-change units (the
        training loss), with the prior (``before``) and adapted (``after``) model.
        """
        obs, act, nxt = (x.to(self.device) for x in (segments.obs, segments.act, segments.next_obs))
        out = {}
        for name, predict in self._before_and_after(obs, act, nxt, past):
            if only is not None and name != only:  # one of the two measures is wanted
                continue
            with torch.no_grad():
                pred = predict(obs[:, past:], act[:, past:])
                err = ((pred - nxt[:, past:]) / self.normalizer.delta_std).pow(2).mean()
            out[name] = float(err)
        return out

    def _before_and_after(
        self, obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor, past: int
    ) -> Iterator[tuple[str, PredictFn]]:
        """``("before", the prior)`` and ``("after", the model adapted to the first past transitions)``."""
        for name, count in (("before", 0), ("after", past)):
            counts = torch.full((obs.shape[0],), count, dtype=torch.long, device=self.device)
            yield name, self.mean_predictor(Window(obs[:, :past], act[:, :past], nxt[:, :past], counts))

    def open_loop_errors(self, segments: Window, past: int) -> dict[str, list[float]]:
        """Open-loop error along the future part of segments, before vs after adaptation.

        What the planner relies on (issue 37): from the first future state, the model is fed its
        own predictions under the recorded actions for the rest of the segment, and compared
        with the states that occurred. ``out[name][h - 1]`` is the mean squared error ``h``
        steps ahead, in normalised state units (the observation's standard deviation, since
        errors compound in the state, not in the one-step change). A model whose one-step error
        falls with adaptation can still drift further over the horizon.
        """
        obs, act, nxt = (x.to(self.device) for x in (segments.obs, segments.act, segments.next_obs))
        horizon, scale = obs.shape[1] - past, self.normalizer.obs_std
        out = {}
        for name, predict in self._before_and_after(obs, act, nxt, past):
            state, errors = obs[:, past : past + 1], []
            with torch.no_grad():
                for h in range(horizon):
                    state = predict(state, act[:, past + h : past + h + 1])
                    errors.append(float(((state - nxt[:, past + h : past + h + 1]) / scale).pow(2).mean()))
            out[name] = errors
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"module": self.module.state_dict()}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        if "optimizer" in state:
            opt = self._ensure_optimizer()
            opt.load_state_dict(state["optimizer"])
            # A saved group carries the kernel choice of the process that wrote it; this one's applies.
            for group in opt.param_groups:
                group["fused"], group["foreach"] = fused_adam(self.device), None

    def begin_fit(self) -> torch.optim.Optimizer:
        """Start an iteration's fit: warm start (default) or fresh weights; returns Adam."""
        if not self.fit_cfg.warm_start:
            if self._initial_state is None:
                self._initial_state = copy.deepcopy(self.module.state_dict())
            else:
                self.module.load_state_dict(self._initial_state)
                self.optimizer = None
        return self._ensure_optimizer()

    def _ensure_optimizer(self) -> torch.optim.Optimizer:
        """The rule's Adam, kept across iterations so warm starts keep its moments.

        With ``fit.weight_decay`` the MLPs' weight matrices form a group of their own with that
        L2 penalty (PETS regularises its weights, not its biases or variance bounds); without
        it, one group as before, so optimiser states saved by earlier runs still load.
        """
        if self.optimizer is None:
            params: Any = list(self.module.parameters())
            if self.fit_cfg.weight_decay > 0.0:
                decayed = [w for m in self.module.modules() if isinstance(m, MLP) for w in m.weight_matrices()]
                ids = {id(w) for w in decayed}
                params = [
                    {"params": decayed, "weight_decay": self.fit_cfg.weight_decay},
                    {"params": [p for p in params if id(p) not in ids]},
                ]
            self.optimizer = adam(params, self.fit_cfg.lr, self.device)
        return self.optimizer
