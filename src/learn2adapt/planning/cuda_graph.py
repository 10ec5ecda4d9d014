"""CUDA graphs of a plan and of the steps around it: one launch where eager PyTorch makes thousands.

On a GPU, planning at our sizes is bound by kernel launches, not arithmetic: a PETS plan (CEM 5
x 400 candidates x 20 particles, H = 30) is about 4,000 small kernels, each launched from Python
(docs/experiments.md, "Running on a GPU"). A CUDA graph records the kernels of a computation once
and replays them with a single launch. With ``planner.cuda_graph`` a planner records

* the **whole plan** (:class:`PlanGraphs`): every iteration of its search, sampling, rollouts,
  refits and its warm-start state update, so a plan is one replay. The random draws come from the
  planner's own per-environment ``torch.Generator`` s, registered with the graph
  (``CUDAGraph.register_generator_state``): each replay draws where the eager plan would, from
  the same seeds, so a replayed plan equals the eager one. The state a plan carries to the next
  (the warm-start mean, iCEM's elites, the fallback count) lives in tensors the plan updates in
  place, so the graph reads and writes it where the eager plan does;
* else, only its **model rollouts** (:class:`RolloutGraphs`, :meth:`Planner.evaluate
  <learn2adapt.planning.base.Planner.evaluate>`): a plan under a deadline (its iterations stop
  on the clock) or one whose whole recording failed (the reason is printed once).

:class:`Recordings` is the bookkeeping both share, and that GrBAL's online adaptation step
(:mod:`learn2adapt.adaptation.online`) and its validation pass use too: recordings over static
copies of the inputs, one per key and input shapes, dropped when the model's tensors move.

A graph replays fixed memory: it reads the model's weights where they were when it was
recorded. That is right for a model whose tensors are updated in place (an optimiser step, a
checkpoint load, a normaliser refit), and wrong for one whose tensors are replaced. So a
rollout or plan is recorded when the one-step model is

* a method of an ``nn.Module`` (the non-adaptive models: MB, PE-TS), or
* an :class:`~learn2adapt.types.AdaptedPredictor` (GrBAL's, MB+DE's and MOLe's per-environment
  adapted weights, ReBAL's recurrent context): the graph is recorded over static copies of its
  ``params``, and each plan's tensors are copied into them before the replay, so one recording
  serves every plan of the same shapes;

the graphs are recorded again whenever the storage of any of the module's parameters or buffers
moved, and every other predictor (a closure: a user's) runs eagerly, with a one-line notice.
Random draws inside the model (an ensemble's trajectory sampling) use torch's default generator,
which a graph advances on every replay. Recording runs the computation a few times (CUDA
warm-up calls); what those calls write to the planner's state and draw from its generators and
the default one is undone (:func:`record`), so the first replay is the first plan.

How a recording is made and replayed is a :class:`Capture`: :class:`CudaCapture` on a GPU; the
tests run the same bookkeeping on a CPU with a capture that replays by calling the recorded
function on the recorded static tensors (:class:`CallCapture`), which is what a graph computes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from learn2adapt.types import AdaptedPredictor, PredictFn

#: Eager calls before recording: lazy initialisation (cuBLAS workspaces, the allocator's
#: blocks, cuFFT plans) must not happen inside the graph.
WARMUP_CALLS = 2

#: What a recorded function returns: a tensor, or tuples / lists / dicts of them (None allowed).
Out = TypeVar("Out")


class CaptureNotice(UserWarning):
    """Something ``planner.cuda_graph`` would record runs eagerly; the message says what and why."""


def _map(fn: Callable[[torch.Tensor], torch.Tensor], value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map(fn, v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_map(fn, v) for v in value)
    if value is None:
        return None
    raise TypeError(
        f"a recorded function returns tensors (or tuples, lists, dicts of them), not {type(value).__name__}"
    )


def leaves(value: Any) -> list[torch.Tensor]:
    """The tensors of a recorded function's output, in a fixed order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in leaves(v)]
    return []


def _owner(fn: Callable[..., object]) -> nn.Module | None:
    """The module whose tensors ``fn`` reads: its ``__self__`` (an adapted predictor's ``forward``'s)."""
    method = fn.forward if isinstance(fn, AdaptedPredictor) else fn
    module = getattr(method, "__self__", None)
    return module if isinstance(module, nn.Module) else None


def module_storage(*modules: nn.Module) -> tuple[int, ...]:
    """Where the parameters and buffers of ``modules`` live: changes when one is replaced by a new
    tensor, not when one is updated in place, which is exactly when a recorded graph goes stale."""
    return tuple(t.data_ptr() for m in modules for t in (*m.parameters(), *m.buffers()))


def storage_key(fn: Callable[..., object]) -> tuple[int, ...] | None:
    """Where the tensors behind ``fn`` live, if ``fn`` is a method of an ``nn.Module`` or an
    :class:`AdaptedPredictor` over one; else None (:func:`module_storage`; an adapted predictor's
    own ``params`` are copied into the graph at every replay: not part of the key).
    """
    module = _owner(fn)
    return None if module is None else module_storage(module)


def _identity(fn: Callable[..., object]) -> Hashable:
    """What a recording of ``fn`` is for: the method (and its weights' shapes) of an adapted predictor."""
    if isinstance(fn, AdaptedPredictor):
        return (fn.forward, tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(fn.params.items())))
    return fn


def default_generator(device: torch.device) -> torch.Generator | None:
    """torch's default generator of ``device`` (what an ensemble's sampling draws from)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.default_generators[index]
    return torch.default_generator if device.type == "cpu" else None


class Capture(Protocol):
    """Records ``fn`` (over tensors it keeps) and returns ``(replay, output)``: ``replay()``
    recomputes ``fn`` into ``output`` from whatever those tensors hold then. Draws from
    ``generators`` (besides the device's default generator) must advance with each replay."""

    def __call__(
        self, fn: Callable[[], Out], device: torch.device, generators: Sequence[torch.Generator] = ()
    ) -> tuple[Callable[[], None], Out]:
        """Record ``fn`` on ``device``."""


class CudaCapture:
    """A CUDA graph: warm-up calls on a side stream, then one recorded call.

    ``generators`` are registered with the graph (``CUDAGraph.register_generator_state``), so each
    replay advances them as the eager calls would; a torch without it raises (the caller then
    falls back, with a notice).
    """

    def __call__(
        self, fn: Callable[[], Out], device: torch.device, generators: Sequence[torch.Generator] = ()
    ) -> tuple[Callable[[], None], Out]:
        if device.type != "cuda":
            raise RuntimeError(f"a CUDA graph records CUDA tensors, not {device.type} ones")
        graph = torch.cuda.CUDAGraph()
        own = [g for g in generators if g.device.type == "cuda"]
        if own and not callable(getattr(graph, "register_generator_state", None)):
            raise RuntimeError(
                f"torch {torch.__version__} cannot record draws from a torch.Generator in a CUDA graph "
                "(no CUDAGraph.register_generator_state)"
            )
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        for g in own:  # before the capture begins (registration allocates the graph's seed tensors)
            graph.register_generator_state(g)
        with torch.cuda.graph(graph):
            out = fn()
        return graph.replay, out


class CallCapture:
    """Replays by calling ``fn`` again over the tensors it recorded (tests; any device)."""

    def __call__(
        self, fn: Callable[[], Out], device: torch.device, generators: Sequence[torch.Generator] = ()
    ) -> tuple[Callable[[], None], Out]:
        out = _map(torch.clone, fn())

        def replay() -> None:
            for static, new in zip(leaves(out), leaves(fn())):
                static.copy_(new)

        return replay, out


def record(
    capture: Capture,
    fn: Callable[[], Out],
    device: torch.device,
    state: Sequence[torch.Tensor] = (),
    generators: Sequence[torch.Generator] = (),
) -> tuple[Callable[[], None], Out]:
    """``capture(fn, device, generators)`` with the effects of the calls it makes undone: ``state``
    (tensors ``fn`` updates in place) and the states of ``generators`` and of the device's default
    generator are put back as they were, so the first replay computes what the first eager call would."""
    drawn = [*generators]
    default = default_generator(device)
    if default is not None:
        drawn.append(default)
    saved = [t.clone() for t in state]
    rng = [g.get_state() for g in drawn]
    try:
        return capture(fn, device, generators)
    finally:
        with torch.no_grad():
            for t, s in zip(state, saved):
                t.copy_(s)
        for g, s in zip(drawn, rng):
            g.set_state(s)


@dataclass
class Recording:
    """One recorded call: its replay, static inputs, output and the tensors it needs kept alive."""

    replay: Callable[[], None]
    inputs: list[torch.Tensor]
    out: Any
    keep: tuple[torch.Tensor, ...]


def _signature(t: torch.Tensor) -> Hashable:
    return (tuple(t.shape), t.dtype, t.device)


def _where(t: torch.Tensor) -> Hashable:
    return (t.data_ptr(), tuple(t.shape), t.dtype)


class Recordings:
    """Recorded calls of one computation, one per key and input shapes, for the current model storage.

    Args:
        capture: how to record and replay (default: a CUDA graph).
        what: what is recorded, and ``then``: what happens when recording fails (the notice's words).

    Attributes:
        records: graphs recorded so far (diagnostics, tests).
        replays: calls answered by a replay.
        failure: why recording failed, if it did (the computation then stays eager).
    """

    def __init__(
        self, capture: Capture | None = None, what: str = "rollout", then: str = "rollouts run eagerly from now on"
    ) -> None:
        self.capture: Capture = capture or CudaCapture()
        self.what, self.then = what, then
        self._graphs: dict[Hashable, Recording] = {}
        self._storage: Hashable = None
        self.records = 0
        self.replays = 0
        self.failure: str | None = None

    def call(
        self,
        fn: Callable[..., Out],
        key: Hashable,
        storage: Hashable,
        inputs: Sequence[torch.Tensor],
        *,
        state: Sequence[torch.Tensor] = (),
        generators: Sequence[torch.Generator] = (),
        keep: Callable[[], Iterable[torch.Tensor]] | None = None,
        device: torch.device | None = None,
    ) -> Out | None:
        """``fn(*inputs)`` by a replay, or None where recording failed (now or before): call ``fn``.

        Args:
            fn: the eager computation, a function of ``inputs`` (static copies are passed when recording).
            key: with the inputs' shapes and the state's places, what a recording is for.
            storage: where the tensors ``fn`` reads besides ``inputs`` live (:func:`module_storage`):
                when it changes, every recording is dropped.
            inputs: tensors copied into the recording's static ones before each replay.
            state: tensors ``fn`` reads and updates in place (a planner's warm-start state): the graph
                works on them where they are; their places are part of the key.
            generators: generators ``fn`` draws from (registered with the graph).
            keep: after recording, the other tensors the graph reads or writes (scratch buffers,
                data read in place), kept alive as long as the recording.
            device: where ``fn`` computes (default: that of the first input).

        Returns:
            The recorded output (overwritten by the next replay: copy what must outlive it).
        """
        if self.failure is not None:
            return None
        if storage != self._storage:  # a tensor was replaced: every graph reads stale memory
            self._graphs.clear()
            self._storage = storage
        full = (key, tuple(_signature(t) for t in inputs), tuple(_where(t) for t in state))
        recorded = self._graphs.get(full)
        if recorded is None:
            try:
                recorded = self._record(fn, inputs, state, generators, keep, device or inputs[0].device)
            except RuntimeError as err:  # an operation that cannot be captured: stay eager from now on
                self.failure = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                warnings.warn(
                    f"planner.cuda_graph: recording the {self.what} failed ({self.failure}): {self.then}",
                    CaptureNotice,
                    stacklevel=3,
                )
                return None
            self._graphs[full] = recorded
        for static, t in zip(recorded.inputs, inputs):
            static.copy_(t)
        recorded.replay()
        self.replays += 1
        return recorded.out

    def _record(
        self,
        fn: Callable[..., Out],
        inputs: Sequence[torch.Tensor],
        state: Sequence[torch.Tensor],
        generators: Sequence[torch.Generator],
        keep: Callable[[], Iterable[torch.Tensor]] | None,
        device: torch.device,
    ) -> Recording:
        static = [t.clone() for t in inputs]
        replay, out = record(self.capture, lambda: fn(*static), device, state, generators)
        self.records += 1
        return Recording(replay, static, out, tuple(keep()) if keep is not None else ())

    def clear(self) -> None:
        """Drop every recording (their graphs' memory goes back to the allocator)."""
        self._graphs.clear()


def _storage(model: PredictFn, others: tuple[Callable[..., object] | None, ...]) -> Hashable:
    """Where the model's tensors live (None: not recordable), with those of any other callable that is
    a module's method (a learned reward or termination)."""
    key = storage_key(model)
    return None if key is None else (key, *(None if f is None else storage_key(f) for f in others))


def _over_static(model: PredictFn, fn: Callable[..., Out]) -> tuple[list[torch.Tensor], Callable[..., Out]]:
    """``fn(model, *inputs)`` as a function of ``(*inputs, *weights)``: an adapted predictor's
    ``params`` become inputs (copied in at every replay); any other model is read in place."""
    if not isinstance(model, AdaptedPredictor):
        return [], lambda *inputs: fn(model, *inputs)
    names, forward = sorted(model.params), model.forward

    def call(*tensors: torch.Tensor) -> Out:
        split = len(tensors) - len(names)
        return fn(AdaptedPredictor(forward, dict(zip(names, tensors[split:]))), *tensors[:split])

    return [model.params[n] for n in names], call


#: ``rollout(predict, obs, actions) -> returns``: the eager computation a rollout graph records.
Rollout = Callable[[PredictFn, torch.Tensor, torch.Tensor], torch.Tensor]


class RolloutGraphs(Recordings):
    """Recorded rollouts of one planner, one per (model, shapes), for the current model storage.

    Args:
        capture: how to record and replay (default: a CUDA graph).
    """

    def __init__(self, capture: Capture | None = None) -> None:
        super().__init__(capture, "rollout", "rollouts run eagerly from now on")

    def run(
        self,
        rollout: Rollout,
        model: PredictFn,
        others: tuple[Callable[..., object] | None, ...],
        obs: torch.Tensor,
        actions: torch.Tensor,
        keep: Callable[[], Iterable[torch.Tensor]] | None = None,
    ) -> torch.Tensor | None:
        """``rollout(model, obs, actions)`` by a replay, or None where it cannot be graphed.

        Args:
            rollout: the eager computation; its result must be a tensor it keeps (a planner buffer).
            model: the one-step model (graphed if a module's method or an :class:`AdaptedPredictor`).
            others: the other callables it uses (reward, termination): with ``model`` and the
                shapes, the graph's identity.
            obs: ``(E, obs_dim)``.
            actions: ``(E, N, H, act_dim)``.
            keep: the planner's scratch buffers, kept alive with the recording that uses them.

        Returns:
            The recorded output tensor, overwritten by the next replay; None: call ``rollout``.
        """
        storage = _storage(model, others)
        if storage is None:
            return None
        weights, call = _over_static(model, rollout)
        return self.call(call, (_identity(model), others), storage, [obs, actions, *weights], keep=keep)


#: ``search(predict, obs) -> actions``: a planner's whole eager plan, which a plan graph records.
Search = Callable[[PredictFn, torch.Tensor], torch.Tensor]


class PlanGraphs(Recordings):
    """Recorded whole plans of one planner, one per (model, shapes, state places).

    Args:
        capture: how to record and replay (default: a CUDA graph).
    """

    def __init__(self, capture: Capture | None = None) -> None:
        super().__init__(capture, "whole plan", "plans run eagerly from now on, their rollouts recorded")

    def run(
        self,
        search: Search,
        model: PredictFn,
        others: tuple[Callable[..., object] | None, ...],
        obs: torch.Tensor,
        state: Sequence[torch.Tensor],
        generators: Sequence[torch.Generator],
        keep: Callable[[], Iterable[torch.Tensor]] | None = None,
    ) -> torch.Tensor | None:
        """``search(model, obs)`` by a replay, or None where it cannot be graphed.

        Args:
            search: the planner's eager plan; it must update the planner's state in place.
            model: the one-step model (graphed if a module's method or an :class:`AdaptedPredictor`).
            others: reward and termination functions (part of the identity).
            obs: ``(E, obs_dim)`` fp32 on the planner's device.
            state: the planner's state tensors (see :meth:`Recordings.call`).
            generators: the per-environment generators the plan draws from.
            keep: the planner's scratch buffers, kept alive with the recording.

        Returns:
            The recorded actions ``(E, act_dim)``, overwritten by the next replay; None: plan eagerly.
        """
        storage = _storage(model, others)
        if storage is None:
            return None
        weights, call = _over_static(model, search)
        return self.call(
            call, (_identity(model), others), storage, [obs, *weights], state=state, generators=generators, keep=keep
        )
