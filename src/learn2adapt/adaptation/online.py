"""Online adaptation: the adapted model the planner calls at every control step.

GrBAL's online rule (Nagabandi, Clavera et al., ICLR 2019, Alg. 2): from the fitted theta*, one
inner step (or ``steps``) on each environment's last M transitions, batched over environments
by :func:`~learn2adapt.adaptation.inner_update.adapt_batched` (first order: nothing is
differentiated through online), optionally guarded so that a step which worsens the window's
fit is reverted (:func:`keep_improving`). :func:`adapted_predictor` hands the planner the
result as an :class:`~learn2adapt.types.AdaptedPredictor`. MB+DE, MOLe and the PE-TS ensembles
use the same pieces.

With ``planner.cuda_graph`` on a GPU (:meth:`AdaptationRule.record_graphs
<learn2adapt.adaptation.base.AdaptationRule.record_graphs>`) the step itself (forward, inner
gradient, update, guard) is replayed from a CUDA graph recorded over static copies of the
``(E, M)`` window (:class:`~learn2adapt.planning.cuda_graph.Recordings`): adapt + plan is then
two replays. Only the check that some environment has a transition stays eager (one read of
``count``).
"""

from __future__ import annotations

import torch

from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.adaptation.inner_update import (
    Dynamics,
    Params,
    StepSize,
    adapt_batched,
    normalised,
    per_batch,
    segment_losses,
)
from learn2adapt.models import onednn
from learn2adapt.models.ensemble import EnsembleDynamics
from learn2adapt.models.mlp import MLP
from learn2adapt.planning.cuda_graph import Capture, Recordings, module_storage
from learn2adapt.types import AdaptedPredictor, PredictFn, Window

#: What a failed recording of the online step says.
RECORDING = ("online adaptation step", "it runs eagerly from now on")


def online_recordings(capture: Capture | None = None) -> Recordings:
    """Recordings of the online step (``capture``: how to record; default a CUDA graph)."""
    return Recordings(capture, *RECORDING)


class GuardCount:
    """How many adaptations ``adaptation.guard`` checked and how many it reverted to theta*
    (one per environment, member and call; the reverted count stays a tensor, so counting never
    waits for the device)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.checked = 0
        self.reverted: torch.Tensor | None = None

    def add(self, keep: torch.Tensor) -> None:
        self.checked += keep.numel()
        reverted = (~keep).sum()
        self.reverted = reverted if self.reverted is None else self.reverted + reverted

    def fraction(self) -> float:
        """Reverted / checked, NaN before any check."""
        return float(self.reverted) / self.checked if self.reverted is not None and self.checked else float("nan")


def online_params(
    model: Dynamics,
    recent: Window,
    step: StepSize,
    steps: int = 1,
    guard: bool = False,
    guard_count: GuardCount | None = None,
    layers: int = 0,
    graphs: Recordings | None = None,
) -> Params | None:
    """Per-environment adapted parameters ``(E, ...)`` from theta* and the recent windows.

    ``layers > 0`` (``adaptation.online_layers``) adapts only the last ``layers`` layers: the
    others stay theta*'s own tensors, shared by every environment, so the planner runs them
    as one packed, fused product instead of a per-environment batched one (issue 38).

    An ensemble's are ``(members, E, ...)``: every member takes its own step on the same window.
    With ``guard``, an environment (member) whose adapted loss on its window exceeds theta*'s
    keeps theta* (:func:`keep_improving`), counted in ``guard_count`` when given.

    Starts from the fitted parameters at every call (nothing is carried between calls);
    environments with ``count == 0`` keep theta* exactly, those with ``count < M`` adapt
    on their valid transitions (a step scaled by ``count / M``, see the module
    docstring). Returns None when no environment has any transition (the caller then
    predicts with theta* and skips the adaptation altogether).

    ``graphs``: replay the step from a recording (``planner.cuda_graph``, :func:`online_recordings`).
    """
    count = recent.count if recent.count is not None else torch.full((len(recent),), recent.length)
    if recent.obs.shape[1] == 0 or steps == 0 or not bool((count > 0).any()):
        return None
    fitted = model.params()
    stepped = None if graphs is None else _recorded_step(graphs, model, recent, step, steps, guard, layers)
    if stepped is None:
        out, keep = _online_step(model, recent, step, steps, guard, layers)
    else:
        adapted, keep = stepped
        out = {n: adapted[n].clone() if n in adapted else v for n, v in fitted.items()}  # outlive the next replay
    if keep is not None and guard_count is not None:
        guard_count.add(keep)
    onednn.mark_reused([v for n, v in out.items() if v is not fitted[n]])  # read H x iterations times: pack once
    return out


def _recorded_step(
    graphs: Recordings, model: Dynamics, recent: Window, step: StepSize, steps: int, guard: bool, layers: int
) -> tuple[Params, torch.Tensor | None] | None:
    """:func:`_online_step`'s adapted tensors (theta*'s own left out) and guard flags, by a replay
    over static copies of the window; None where the step cannot be recorded."""
    windows = [recent.obs, recent.act, recent.next_obs, *([] if recent.count is None else [recent.count])]

    def adapt(
        obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor, *count: torch.Tensor
    ) -> tuple[Params, torch.Tensor | None]:
        out, keep = _online_step(model, Window(obs, act, nxt, count[0] if count else None), step, steps, guard, layers)
        fitted = model.params()
        return {n: v for n, v in out.items() if v is not fitted[n]}, keep

    return graphs.call(adapt, (model, step, steps, guard, layers), module_storage(model, step), windows)


def _online_step(
    model: Dynamics, recent: Window, step: StepSize, steps: int, guard: bool, layers: int
) -> tuple[Params, torch.Tensor | None]:
    """The adapted parameters of :func:`online_params` (theta*'s own tensors for the layers not
    adapted) and, with ``guard``, where the adapted ones were kept; no host synchronisation."""
    # Detached leaves: the inner gradient must not reach (or accumulate into) theta*.
    theta = {n: p.detach().requires_grad_(True) for n, p in model.params().items()}
    mask = recent.mask
    # Padding rows are zeroed, not just masked: NaN padding times a zero gradient would be NaN.
    obs, act, nxt = (torch.where(mask[..., None], t, 0.0) for t in (recent.obs, recent.act, recent.next_obs))
    with torch.inference_mode(False), torch.enable_grad():
        x, y = normalised(model, obs, act, nxt)
        if model.net.members:
            x, y = (t.expand(model.net.members, *t.shape) for t in (x, y))
        adapted = adapt_batched(model.net, theta, x, y, mask, step, steps, first_order=True, layers=layers)
    keep = None
    if guard:
        adapted, keep = keep_improving(model.net, theta, adapted, x, y, mask)
    fitted = model.params()
    return {n: fitted[n] if v is theta[n] else v.detach() for n, v in adapted.items()}, keep


def keep_improving(
    net: MLP, theta: Params, adapted: Params, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor
) -> tuple[Params, torch.Tensor]:
    """``adapted`` where it fits the adaptation window at least as well as ``theta`` (per environment,
    and per member of an ensemble), ``theta`` elsewhere; and where it was kept (``(E,)`` or
    ``(members, E)``).

    Why: a learned step size is meta-trained on the training tasks' windows; on states far from
    them the inner gradient can be orders of magnitude larger and the step overshoot, making the
    model worse on the very transitions it adapted to (measured: a post-adaptation error of
    1.6e5 against 143 before, on HalfCheetahMassDamping's lightest held-out cheetah). That is
    checked on the window alone, so no future transition is used.
    """
    with torch.no_grad():
        before = segment_losses(net(x, theta), y, mask)
        after = segment_losses(net(x, adapted), y, mask)
    keep = after <= before  # NaN: not kept
    out: Params = {}
    for name, new in adapted.items():
        if new is theta[name]:  # a layer left unadapted (``layers``): nothing to choose
            out[name] = new
            continue
        old = per_batch(theta[name], new, -3 if name.startswith("w") else -2)
        out[name] = torch.where(keep.view(*keep.shape, *([1] * (new.dim() - keep.dim()))), new, old)
    return out, keep


def adapted_predictor(
    model: Dynamics,
    recent: Window | None,
    step: StepSize,
    steps: int = 1,
    mean: bool = False,
    guard: bool = False,
    guard_count: GuardCount | None = None,
    layers: int = 0,
    graphs: Recordings | None = None,
) -> PredictFn:
    """A planner's ``predict`` using per-environment adapted parameters (see :func:`online_params`).

    An ensemble's predictor samples (trajectory sampling); ``mean=True`` gives its members'
    mean prediction instead (prediction-error measurements).
    """
    params = None if recent is None else online_params(model, recent, step, steps, guard, guard_count, layers, graphs)
    forward = model.predict_mean if mean and isinstance(model, EnsembleDynamics) else model.predict
    return forward if params is None else AdaptedPredictor(forward, params)


class StepPredictors:
    """``predictor`` and ``mean_predictor`` of a rule that adapts online by gradient steps from its
    fitted model (GrBAL, MB+DE): :func:`adapted_predictor` with the rule's step size, its number
    of steps (``_online_steps``) and its ``adaptation.guard`` and ``adaptation.online_layers``."""

    model: Dynamics
    step_size: StepSize
    guard_count: GuardCount
    adapt_cfg: AdaptationConfig
    online_graphs: Recordings | None  # recorded online steps (planner.cuda_graph on a GPU; base.record_graphs)

    @property
    def _online_steps(self) -> int:
        return self.adapt_cfg.inner_steps

    def predictor(self, recent: Window | None) -> PredictFn:
        cfg = self.adapt_cfg
        return adapted_predictor(
            self.model, recent, self.step_size, self._online_steps, guard=cfg.guard, guard_count=self.guard_count,
            layers=cfg.online_layers, graphs=self.online_graphs,
        )  # fmt: skip

    def mean_predictor(self, recent: Window | None) -> PredictFn:
        cfg = self.adapt_cfg
        return adapted_predictor(
            self.model, recent, self.step_size, self._online_steps, mean=True, guard=cfg.guard,
            layers=cfg.online_layers, graphs=self.online_graphs,
        )  # fmt: skip
