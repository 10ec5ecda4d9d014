"""The GrBAL inner update, batched over segments or environments.

GrBAL (Nagabandi, Clavera et al., ICLR 2019, Sec. 4.1, Eq. 3) adapts the dynamics
model's parameters on the M most recent transitions with gradient steps

    theta' = theta - alpha * grad_theta L(D_past, theta),

where ``L`` is the mean squared error on normalised state changes. Meta-training needs
this update for a meta-batch of B segments, differentiably (MAML, Finn et al., 2017);
online control needs it for E environments at every step (:mod:`learn2adapt.adaptation.online`
builds the planner's predictor from it). Both are done in one batched pass, with no Python
loop over segments or environments.

Why it can be batched exactly. For a layer ``z = h W + b`` evaluated on a segment's M
past transitions, the gradient of that segment's loss is ``dL/dW = h^T G`` and
``dL/db = sum_m G_m``, where ``h (M, in)`` is the layer input and ``G = dL/dz (M, out)``.
A single forward/backward over all segments at once, with the *shared* weights and the
per-segment losses summed, yields every segment's own ``h`` and ``G`` (segments do not
interact), so per-segment weight gradients are one ``bmm`` away. With a scalar alpha
the adapted layer need not even be formed: for the future inputs ``h'``

    h' W' + b' = h' W + b - alpha (h' h^T + 1) G        (rank-M correction),

so the future pass runs through the shared weights (one large GEMM for the whole
meta-batch) plus small ``(K, M)`` products. Several inner steps stack their ``(h, G)``
pairs (rank sM after s steps). Autograd differentiates through all of it, which gives
the exact second-order meta-gradient; the first-order variant (FOMAML) detaches ``h``
and ``G``.

Implementations (``impl``), all exact and equal up to float rounding:

* ``lowrank`` — the form above; needs a scalar alpha (fixed or learned). The default
  when it applies (about 1.8x a plain supervised step, see the benchmark).
* ``batched`` — materialises per-segment adapted weights ``W - alpha * h^T G`` of shape
  ``(B, in, out)``; needed for per-parameter step sizes (Meta-SGD), where the correction
  ``alpha ⊙ (h^T G)`` has no low-rank form (later steps run the batched forward with
  per-segment weights). The default for Meta-SGD (several times slower in
  meta-training: memory-bound ``(B, in, out)`` tensors), and the one used online (the
  adapted weights are then reused for all N x H
  candidate evaluations of a plan).
* ``vmap`` — ``torch.func.vmap(torch.func.grad(loss))``; general, kept for comparison.
* ``loop`` — the reference: one segment at a time with
  ``torch.autograd.grad(create_graph=True)``; used by the tests.
``learn2adapt.benchmarks.adaptation`` times them against each other.

Ensembles (PE-TS + GrBAL, PE-TS + MB+DE): every tensor gains a leading members axis
(``x (members, B, M, in)``, shared ``W (members, in, out)``, adapted ``(members, B, in, out)``)
and each member takes its own inner step: the same code, one ``bmm`` per layer over
members x segments (``linear`` and ``matmul`` broadcast over the extra axis).

Masks (episode starts): a window with ``count < M`` valid transitions adapts on those
only, with their squared errors *summed and divided by M* (padding rows count zero):
the full-window gradient with the missing transitions contributing nothing, so the
step shrinks in proportion to ``count / M`` and ``count == 0`` leaves theta exactly
unchanged. Why not their mean: it lets one or two transitions take a full-size step
and overfit them; on the synthetic task family (tests/synthetic_tasks.py), adapting on
one transition then gave 3.3x the unadapted error, against 0.91x with this rule, which
improves monotonically with ``count`` (0.31 -> 0.29 -> 0.26 -> 0.22 -> 0.15 -> 0.09 for
count 0, 1, 2, 4, 8, 16 of M = 16). With full windows both are the same loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from learn2adapt.errors import ConfigError, UnknownName
from learn2adapt.models.dynamics import MLPDynamics
from learn2adapt.models.ensemble import EnsembleDynamics
from learn2adapt.models.mlp import MLP, linear

Params = dict[str, torch.Tensor]
#: The models GrBAL's inner step adapts: one MLP, or an ensemble adapted member by member.
Dynamics = MLPDynamics | EnsembleDynamics

#: Accepted values of ``adaptation.step_size``.
STEP_SIZES = ("fixed", "scalar", "per_parameter")
#: Accepted values of ``impl``.
IMPLEMENTATIONS = ("auto", "lowrank", "batched", "vmap", "loop")


class StepSize(nn.Module):
    """The inner step size alpha: fixed, one learned scalar, or learned per parameter.

    Learned step sizes are stored as ``log alpha`` so they stay positive: the inner
    update remains a descent step on the past loss whatever the outer optimiser does
    (Meta-SGD, Li et al., 2017, lets alpha take any sign; we trade that freedom for
    stability). They live in this module, hence in the rule's ``module`` and its
    checkpoints, and are trained by the same Adam as the weights.

    Args:
        kind: ``fixed`` | ``scalar`` | ``per_parameter``.
        init: alpha (its initial value when learned; must be > 0 then).
        shapes: parameter name -> shape, for per-parameter step sizes.
    """

    def __init__(self, kind: str, init: float, shapes: Mapping[str, torch.Size]) -> None:
        super().__init__()
        if kind not in STEP_SIZES:
            raise UnknownName(f"unknown step_size {kind!r}; available: {', '.join(STEP_SIZES)}")
        if kind != "fixed" and not init > 0:
            raise ConfigError(f"a learned step size needs inner_lr > 0 (got {init})")
        self.kind = kind
        self.alpha: torch.Tensor
        self.log_alpha: nn.Parameter | nn.ParameterDict
        if kind == "fixed":
            self.register_buffer("alpha", torch.tensor(float(init)))
        elif kind == "scalar":
            self.log_alpha = nn.Parameter(torch.tensor(math.log(init)))
        else:
            self.log_alpha = nn.ParameterDict(
                {name: nn.Parameter(torch.full(tuple(shape), math.log(init))) for name, shape in shapes.items()}
            )

    @property
    def is_scalar(self) -> bool:
        """One alpha for every parameter (the low-rank fast path applies)."""
        return self.kind != "per_parameter"

    def scalar(self) -> torch.Tensor:
        """The single alpha (fixed or learned scalar)."""
        if self.kind == "fixed":
            return self.alpha
        if self.kind == "scalar" and isinstance(self.log_alpha, nn.Parameter):
            return self.log_alpha.exp()
        raise ValueError("per-parameter step sizes have no single alpha")

    def for_param(self, name: str) -> torch.Tensor:
        """Alpha for parameter ``name``: a scalar, or a tensor of the parameter's shape."""
        if self.kind == "per_parameter" and isinstance(self.log_alpha, nn.ParameterDict):
            return self.log_alpha[name].exp()
        return self.scalar()

    def stats(self) -> dict[str, float]:
        """Mean / min / max of alpha, for logs."""
        with torch.no_grad():
            if self.kind == "per_parameter":
                a = torch.cat([p.exp().reshape(-1) for p in self.log_alpha.values()])
            else:
                a = self.scalar().reshape(1)
            return {"alpha/mean": float(a.mean()), "alpha/min": float(a.min()), "alpha/max": float(a.max())}


# --- the pieces ---------------------------------------------------------------------------
def normalised(
    model: Dynamics, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network inputs and regression targets (normalised state change), as in ``model.loss``."""
    return model.inputs(obs, act), model.normalizer.norm_delta(next_obs - obs)


def segment_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-segment inner loss ``(..., B)``: squared errors of the valid rows summed, over M.

    ``mask (B, M)`` marks valid transitions (None: all valid, the plain mean). Padding
    rows contribute exactly zero (``where``, so even non-finite padding is ignored);
    dividing by M rather than by the valid count is deliberate (module docstring). Only
    the first ``target.shape[-1]`` outputs are scored: an ensemble member's output also
    holds log-variances, and the inner loss is GrBAL's squared error on the mean.
    """
    err = (pred[..., : target.shape[-1]] - target).pow(2).mean(-1)
    if mask is not None:
        err = torch.where(mask, err, 0.0)
    return err.mean(-1)


def _trace(
    net: MLP, x: torch.Tensor, params: Mapping[str, torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Forward pass keeping every layer's input ``h_i`` and pre-activation ``z_i``."""
    hs, zs = [], []
    h = x
    last = net.num_layers - 1
    for i in range(net.num_layers):
        hs.append(h)
        z = linear(h, params[f"w{i}"], params[f"b{i}"])
        zs.append(z)
        h = net.activation(z) if i < last else z
    return hs, zs


def _layer_grads(
    net: MLP,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    first_order: bool,
    first: int = 0,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-segment layer inputs ``h_i (B, M, in)`` and ``G_i = dL_b/dz_i (B, M, out)``, for the
    layers from ``first`` on (the backward pass stops there).

    The per-segment losses are *summed* before differentiating, so each segment's
    ``G`` is the gradient of its own loss (segments share weights but not activations).
    """
    hs, zs = _trace(net, x, params)
    hs, zs_from = hs[first:], zs[first:]
    loss = segment_losses(zs[-1], y, mask).sum()
    gs = list(torch.autograd.grad(loss, zs_from, create_graph=not first_order))
    if first_order:  # FOMAML: the inner gradient is a constant of the outer problem
        hs = [h.detach() for h in hs]
    return hs, gs


# --- implementations ------------------------------------------------------------------------
def adapt_batched(
    net: MLP,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    step: StepSize,
    steps: int = 1,
    first_order: bool = False,
    layers: int = 0,
) -> Params:
    """Adapted parameters with a leading batch dim (``W (B, in, out)``, ``b (B, out)``).

    An ensemble (``net.members``) takes ``x (members, B, M, in)`` and returns
    ``W (members, B, in, out)``: each member adapted by its own inner step. ``layers > 0``
    adapts only the last ``layers`` layers; the others stay theta's (shared, unbatched).
    """
    p: Params = dict(params)
    first = max(0, net.num_layers - layers) if layers > 0 else 0
    for _ in range(steps):
        hs, gs = _layer_grads(net, p, x, y, mask, first_order, first)
        new: Params = {n: p[n] for i in range(first) for n in (f"w{i}", f"b{i}")}
        for i, (h, g) in enumerate(zip(hs, gs), start=first):
            w, b = f"w{i}", f"b{i}"
            dw, db = torch.matmul(h.transpose(-1, -2), g), g.sum(-2)
            # addcmul: one pass over the (B, in, out) tensors instead of a product then a difference
            new[w] = torch.addcmul(per_batch(p[w], dw, -3), per_batch(step.for_param(w), dw, -3), dw, value=-1.0)
            new[b] = torch.addcmul(per_batch(p[b], db, -2), per_batch(step.for_param(b), db, -2), db, value=-1.0)
        p = new
    return p


def per_batch(t: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    """``t`` (a weight or its step size, shared by the batch) given ``like``'s batch axis to broadcast on.

    Needed for an ensemble, whose shared ``(members, in, out)`` must meet ``(members, B, in, out)``.
    """
    return t.unsqueeze(axis) if 0 < t.dim() < like.dim() else t


def _trace_lowrank(
    net: MLP,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    corr: list[tuple[torch.Tensor, torch.Tensor] | None],
    alpha: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Forward pass of the implicitly adapted layers ``W - alpha X^T G``, keeping ``h_i``, ``z_i``.

    ``corr[i] = (X, G)`` (or None before any step) holds layer ``i``'s past inputs and
    pre-activation gradients of every inner step so far, concatenated along the
    transition axis: ``sum_j X_j^T G_j = X^T G``.
    """
    hs, zs = [], []
    h = x
    last = net.num_layers - 1
    for i in range(net.num_layers):
        hs.append(h)
        z = linear(h, params[f"w{i}"], params[f"b{i}"])
        pair = corr[i]
        if pair is not None:
            # h W' + b' = h W + b - alpha (h X^T + 1) G: shared GEMM + (rows, sM) x (sM, out) per segment.
            X, G = pair
            z = z - alpha * torch.matmul(torch.matmul(h, X.transpose(-1, -2)) + 1.0, G)
        zs.append(z)
        h = net.activation(z) if i < last else z
    return hs, zs


def forward_lowrank(
    net: MLP,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    alpha: torch.Tensor,
    x_future: torch.Tensor,
    steps: int = 1,
    first_order: bool = False,
) -> torch.Tensor:
    """Predictions on ``x_future (B, K, in)`` after ``steps`` inner steps with a scalar alpha.

    The adapted weights are never formed: after ``s`` steps each layer is
    ``W - alpha X^T G`` with ``X (B, sM, in)``, ``G (B, sM, out)`` the stacked layer inputs
    and pre-activation gradients of the ``s`` steps (a rank-sM correction).
    """
    corr: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * net.num_layers
    for _ in range(steps):
        hs, zs = _trace_lowrank(net, params, x, corr, alpha)
        loss = segment_losses(zs[-1], y, mask).sum()  # summed: each segment's G is its own
        gs = torch.autograd.grad(loss, zs, create_graph=not first_order)
        for i, (h, g) in enumerate(zip(hs, gs)):
            if first_order:  # FOMAML: the inner gradient is a constant of the outer problem
                h = h.detach()
            pair = corr[i]
            corr[i] = (h, g) if pair is None else (torch.cat([pair[0], h], -2), torch.cat([pair[1], g], -2))
    return _trace_lowrank(net, params, x_future, corr, alpha)[1][-1]


def adapt_vmap(
    net: MLP,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    step: StepSize,
    steps: int = 1,
    first_order: bool = False,
) -> Params:
    """Same as :func:`adapt_batched`, with per-segment gradients from ``vmap(grad)``."""
    from torch.func import grad, vmap

    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)

    def loss(p: Params, xb: torch.Tensor, yb: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
        return segment_losses(net(xb, p).unsqueeze(0), yb.unsqueeze(0), mb.unsqueeze(0)).squeeze(0)

    p: Params = dict(params)
    for k in range(steps):
        g = vmap(grad(loss), in_dims=(None if k == 0 else 0, 0, 0, 0))(p, x, y, mask)
        p = {n: p[n] - step.for_param(n) * (g[n].detach() if first_order else g[n]) for n in p}
    return p


def forward_loop(
    net: MLP,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    step: StepSize,
    steps: int,
    first_order: bool,
    x_future: torch.Tensor,
) -> torch.Tensor:
    """Reference: MAML one segment at a time with ``autograd.grad`` (slow, obviously right)."""
    outs = []
    for b in range(x.shape[0]):
        p: Params = dict(params)
        mb = None if mask is None else mask[b : b + 1]
        for _ in range(steps):
            inner = segment_losses(net(x[b : b + 1], p), y[b : b + 1], mb).sum()
            names = list(p)
            grads = torch.autograd.grad(inner, [p[n] for n in names], create_graph=not first_order)
            p = {n: p[n] - step.for_param(n) * (g.detach() if first_order else g) for n, g in zip(names, grads)}
        outs.append(net(x_future[b], p))
    return torch.stack(outs)


def resolve_impl(impl: str, step: StepSize, steps: int) -> str:
    """``auto`` -> ``lowrank`` when it applies (scalar alpha), else ``batched``."""
    if impl not in IMPLEMENTATIONS:
        raise UnknownName(f"unknown inner-update implementation {impl!r}; available: {', '.join(IMPLEMENTATIONS)}")
    lowrank_ok = step.is_scalar
    if impl == "auto":
        return "lowrank" if lowrank_ok else "batched"
    if impl == "lowrank" and not lowrank_ok:
        raise ConfigError("the low-rank inner update needs a scalar step size (fixed or learned)")
    return impl


def adapted_forward(
    net: MLP,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    x_future: torch.Tensor,
    step: StepSize,
    steps: int = 1,
    first_order: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    """Normalised predictions on ``x_future (B, K, in)`` of the model adapted on each past.

    Args:
        net: the network.
        params: theta (shared by all B segments).
        x: past inputs ``(B, M, in)``; ``y``: past targets ``(B, M, out)``.
        mask: ``(B, M)`` valid past transitions (None: all).
        x_future: inputs to predict after adaptation.
        step: the step size(s) alpha.
        steps: number of inner gradient steps.
        first_order: drop second-order terms (FOMAML).
        impl: see the module docstring.
    """
    impl = resolve_impl(impl, step, steps)
    if steps == 0:
        return net(x_future, params)
    if impl == "lowrank":
        return forward_lowrank(net, params, x, y, mask, step.scalar(), x_future, steps, first_order)
    if impl == "loop":
        return forward_loop(net, params, x, y, mask, step, steps, first_order, x_future)
    adapt = adapt_vmap if impl == "vmap" else adapt_batched
    return net(x_future, adapt(net, params, x, y, mask, step, steps, first_order))
