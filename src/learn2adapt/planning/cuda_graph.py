"""CUDA graphs of a plan's model rollout: one launch where eager PyTorch makes thousands.

On a GPU, planning at our sizes is bound by kernel launches, not arithmetic: a PETS plan (CEM 5
x 400 candidates x 20 particles, H = 30) is about 4,000 small kernels, each launched from Python
(docs/experiments.md, "Running on a GPU"). A CUDA graph records the kernels of
:meth:`~learn2adapt.planning.base.Planner.evaluate` once and replays them with a single launch;
the planner's own steps between rollouts (sampling, elite refits) stay eager.

A graph replays fixed memory: it reads the model's weights where they were when it was
recorded. That is right for a model whose tensors are updated in place (an optimiser step, a
checkpoint load, a normaliser refit), and wrong for one whose tensors are replaced. So a
rollout is graphed when the one-step model is

* a method of an ``nn.Module`` (the non-adaptive models: MB, PE-TS), or
* an :class:`~learn2adapt.types.AdaptedPredictor` (GrBAL's and MOLe's per-environment adapted
  weights): the graph is recorded over static copies of its ``params``, and each plan's weights
  are copied into them before the replay, so one recording serves every plan of the same shapes;

the graph is recorded again whenever the storage of any of the module's parameters or buffers
moved, and every other predictor (a closure: ReBAL's, a user's) runs eagerly. Random draws
inside the rollout (an ensemble's trajectory sampling) use torch's default CUDA generator,
which a graph advances on every replay.

How a recording is made and replayed is a :class:`Capture`: :class:`CudaCapture` on a GPU; the
tests run the same bookkeeping on a CPU with a capture that replays by calling the recorded
function on the recorded static tensors (:class:`CallCapture`), which is what a graph computes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from learn2adapt.types import AdaptedPredictor, PredictFn

#: Eager calls before recording: lazy initialisation (cuBLAS workspaces, the allocator's
#: blocks) must not happen inside the graph.
WARMUP_CALLS = 2


def _owner(fn: Callable[..., object]) -> nn.Module | None:
    """The module whose tensors ``fn`` reads: its ``__self__`` (an adapted predictor's ``forward``'s)."""
    method = fn.forward if isinstance(fn, AdaptedPredictor) else fn
    module = getattr(method, "__self__", None)
    return module if isinstance(module, nn.Module) else None


def storage_key(fn: Callable[..., object]) -> tuple[int, ...] | None:
    """Where the tensors behind ``fn`` live, if ``fn`` is a method of an ``nn.Module`` or an
    :class:`AdaptedPredictor` over one; else None.

    The key changes when a parameter or buffer is replaced by a new tensor, not when one is
    updated in place, which is exactly when a recorded graph goes stale. (An adapted
    predictor's own ``params`` are copied into the graph at every replay: not part of the key.)
    """
    module = _owner(fn)
    if module is None:
        return None
    return tuple(t.data_ptr() for t in (*module.parameters(), *module.buffers()))


def _identity(fn: Callable[..., object]) -> Hashable:
    """What a recording of ``fn`` is for: the method (and its weights' shapes) of an adapted predictor."""
    if isinstance(fn, AdaptedPredictor):
        return (fn.forward, tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(fn.params.items())))
    return fn


class Capture(Protocol):
    """Records ``fn`` (over tensors it keeps) and returns ``(replay, output)``: ``replay()``
    recomputes ``fn`` into ``output`` from whatever those tensors hold then."""

    def __call__(self, fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[Callable[[], None], torch.Tensor]:
        """Record ``fn`` on ``device``."""


class CudaCapture:
    """A CUDA graph: warm-up calls on a side stream, then one recorded call."""

    def __call__(self, fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[Callable[[], None], torch.Tensor]:
        if device.type != "cuda":
            raise RuntimeError(f"a CUDA graph records CUDA tensors, not {device.type} ones")
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn()
        return graph.replay, out


class CallCapture:
    """Replays by calling ``fn`` again over the tensors it recorded (tests; any device)."""

    def __call__(self, fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[Callable[[], None], torch.Tensor]:
        out = fn().clone()

        def replay() -> None:
            out.copy_(fn())

        return replay, out


@dataclass
class _Recorded:
    replay: Callable[[], None]
    obs: torch.Tensor
    actions: torch.Tensor
    params: dict[str, torch.Tensor]  # static copies of an adapted predictor's weights ({}: none)
    returns: torch.Tensor


#: ``rollout(predict, obs, actions) -> returns``: the eager computation a graph records.
Rollout = Callable[[PredictFn, torch.Tensor, torch.Tensor], torch.Tensor]


class RolloutGraphs:
    """Recorded rollouts of one planner, one per (model, shapes), for the current model storage.

    Args:
        capture: how to record and replay (default: a CUDA graph).

    Attributes:
        records: graphs recorded so far (diagnostics, tests).
        replays: rollouts answered by a replay.
        failure: why recording failed, if it did (the planner then stays eager).
    """

    def __init__(self, capture: Capture | None = None) -> None:
        self.capture: Capture = capture or CudaCapture()
        self._graphs: dict[Hashable, _Recorded] = {}
        self._storage: tuple[int, ...] | None = None
        self.records = 0
        self.replays = 0
        self.failure: str | None = None

    def run(
        self,
        rollout: Rollout,
        model: PredictFn,
        others: tuple[Callable[..., object] | None, ...],
        obs: torch.Tensor,
        actions: torch.Tensor,
    ) -> torch.Tensor | None:
        """``rollout(model, obs, actions)`` by a replay, or None where it cannot be graphed.

        Args:
            rollout: the eager computation; its result must be a tensor it keeps (a planner buffer).
            model: the one-step model (graphed if a module's method or an :class:`AdaptedPredictor`).
            others: the other callables it uses (reward, termination): with ``model`` and the
                shapes, the graph's identity.
            obs: ``(E, obs_dim)``.
            actions: ``(E, N, H, act_dim)``.

        Returns:
            The recorded output tensor, overwritten by the next replay; None: call ``rollout``.
        """
        storage = storage_key(model)
        if storage is None or self.failure is not None:
            return None
        if storage != self._storage:  # a tensor was replaced: every graph reads stale memory
            self._graphs.clear()
            self._storage = storage
        key = (_identity(model), others, tuple(obs.shape), tuple(actions.shape), obs.dtype, actions.dtype, obs.device)
        recorded = self._graphs.get(key)
        if recorded is None:
            try:
                recorded = self._record(rollout, model, obs, actions)
            except RuntimeError as err:  # an operation that cannot be captured: stay eager from now on
                self.failure = f"{type(err).__name__}: {str(err).splitlines()[0]}"
                warnings.warn(f"planner.cuda_graph: recording failed, planning eagerly ({self.failure})", stacklevel=3)
                return None
            self._graphs[key] = recorded
        recorded.obs.copy_(obs)
        recorded.actions.copy_(actions)
        if isinstance(model, AdaptedPredictor):
            for k, v in model.params.items():
                recorded.params[k].copy_(v)
        recorded.replay()
        self.replays += 1
        return recorded.returns

    def _record(self, rollout: Rollout, model: PredictFn, obs: torch.Tensor, actions: torch.Tensor) -> _Recorded:
        static_obs, static_actions = obs.clone(), actions.clone()
        params: dict[str, torch.Tensor] = {}
        static_model = model
        if isinstance(model, AdaptedPredictor):
            params = {k: v.clone() for k, v in model.params.items()}
            static_model = model.with_params(params)
        replay, returns = self.capture(lambda: rollout(static_model, static_obs, static_actions), obs.device)
        self.records += 1
        return _Recorded(replay, static_obs, static_actions, params, returns)
