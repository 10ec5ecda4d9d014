"""CUDA graphs of a plan's model rollout: one launch where eager PyTorch makes thousands.

On a GPU, planning at our sizes is bound by kernel launches, not arithmetic: a PETS plan (CEM 5
x 400 candidates x 20 particles, H = 30) is about 4,000 small kernels, each launched from Python
(docs/experiments.md, "Running on a GPU"). A CUDA graph records the kernels of
:meth:`~learn2adapt.planning.base.Planner.evaluate` once and replays them with a single launch;
the planner's own steps between rollouts (sampling, elite refits) stay eager.

A graph replays fixed memory: it reads the model's weights where they were when it was
recorded. That is right for a model whose tensors are updated in place (an optimiser step, a
checkpoint load, a normaliser refit), and wrong for one whose tensors are replaced. So a
rollout is graphed only when the one-step model is a method of an ``nn.Module`` (the
non-adaptive models: MB, PE-TS), the graph is recorded again whenever the storage of any of
that module's parameters or buffers moved, and every other predictor (an adapted closure,
GrBAL's or ReBAL's) runs eagerly. Random draws inside the rollout (an ensemble's trajectory
sampling) use torch's default CUDA generator, which a graph advances on every replay.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from torch import nn

#: Eager calls before recording: lazy initialisation (cuBLAS workspaces, the allocator's
#: blocks) must not happen inside the graph.
WARMUP_CALLS = 2


def storage_key(fn: Callable[..., object]) -> tuple[int, ...] | None:
    """Where the tensors behind ``fn`` live, if ``fn`` is a method of an ``nn.Module``; else None.

    The key changes when a parameter or buffer is replaced by a new tensor, not when one is
    updated in place, which is exactly when a recorded graph goes stale.
    """
    module = getattr(fn, "__self__", None)
    if not isinstance(module, nn.Module):
        return None
    return tuple(t.data_ptr() for t in (*module.parameters(), *module.buffers()))


@dataclass
class _Recorded:
    graph: torch.cuda.CUDAGraph
    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor


class RolloutGraphs:
    """Recorded rollouts of one planner, one per (functions, shapes), for the current model storage.

    Attributes:
        records: graphs recorded so far (diagnostics, tests).
        replays: rollouts answered by a replay.
        failure: why recording failed, if it did (the planner then stays eager).
    """

    def __init__(self) -> None:
        self._graphs: dict[Hashable, _Recorded] = {}
        self._storage: tuple[int, ...] | None = None
        self.records = 0
        self.replays = 0
        self.failure: str | None = None

    def run(
        self,
        rollout: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        model: Callable[..., object],
        others: tuple[Callable[..., object] | None, ...],
        obs: torch.Tensor,
        actions: torch.Tensor,
    ) -> torch.Tensor | None:
        """``rollout(obs, actions)`` by a graph replay, or None where it cannot be graphed.

        Args:
            rollout: the eager computation; its result must be a tensor it keeps (a planner buffer).
            model: the one-step model ``rollout`` uses (graphed only if a module's method).
            others: the other callables it uses (reward, termination): with ``model`` and the
                shapes, the graph's identity.
            obs: ``(E, obs_dim)`` CUDA tensor.
            actions: ``(E, N, H, act_dim)`` CUDA tensor.

        Returns:
            The recorded output tensor, overwritten by the next replay; None: call ``rollout``.
        """
        storage = storage_key(model)
        if storage is None or self.failure is not None:
            return None
        if storage != self._storage:  # a tensor was replaced: every graph reads stale memory
            self._graphs.clear()
            self._storage = storage
        key = (model, others, tuple(obs.shape), tuple(actions.shape), obs.dtype, actions.dtype, obs.device)
        recorded = self._graphs.get(key)
        if recorded is None:
            try:
                recorded = self._record(rollout, obs, actions)
            except RuntimeError as err:  # an operation that cannot be captured: stay eager from now on
                self.failure = f"{type(err).__name__}: {str(err).splitlines()[0]}"
                warnings.warn(f"planner.cuda_graph: recording failed, planning eagerly ({self.failure})", stacklevel=3)
                return None
            self._graphs[key] = recorded
        recorded.obs.copy_(obs)
        recorded.actions.copy_(actions)
        recorded.graph.replay()
        self.replays += 1
        return recorded.returns

    def _record(
        self, rollout: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], obs: torch.Tensor, actions: torch.Tensor
    ) -> _Recorded:
        static_obs, static_actions = obs.clone(), actions.clone()
        side = torch.cuda.Stream(device=obs.device)
        side.wait_stream(torch.cuda.current_stream(obs.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                rollout(static_obs, static_actions)
        torch.cuda.current_stream(obs.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            returns = rollout(static_obs, static_actions)
        self.records += 1
        return _Recorded(graph, static_obs, static_actions, returns)
