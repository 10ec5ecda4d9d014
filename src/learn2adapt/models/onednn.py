"""Linear layers through oneDNN on the CPU when no gradient is wanted: the planning hot path.

Why: a plan evaluates the model on ``E x N`` rows ``H`` times, and on the CPU
``torch.addmm`` leaves time on the table in two ways (measured on a 2-core AMD EPYC with
AVX-512, torch 2.13, docs/experiments.md, "oneDNN linear layers"):

* in fp32, ``addmm`` runs MKL's sgemm, which takes its AVX2 code path on AMD processors
  (~210 GFLOP/s there) where oneDNN uses AVX-512 (~490): 2.3-2.6x per layer, shared or
  per-environment weights;
* in bf16 (autocast), ``addmm`` already runs oneDNN but first copies its bias into the
  output, then a separate pass applies the activation; oneDNN's fused linear (bias and
  activation in the kernel's epilogue) on weights packed once per fit is 1.2-2.2x faster per
  layer, with identical results.

So :func:`layers_inference` runs ``activation(x @ w + b)`` as ``torch.ops.mkldnn._linear_pointwise``
(the op PyTorch's own compiler emits for CPU linear layers) when :func:`inference_dtype` says so: CPU
tensors, gradients disabled, fp32 or bf16 compute (autocast's dtype, when autocast is on).
Shared ``(in, out)`` weights that are a module's parameters are packed once and
reused until they change (their version counter moves at every optimiser step or load);
batched weights ``(*batch, in, out)`` run one group at a time through every layer
(:func:`layers_inference`): in fp32 always, in bf16 only when they are parameters (an
ensemble's members, packed once per fit) or marked reused (:func:`mark_reused`: adapted per
environment, packed once per plan). Other batched weights stay on ``baddbmm`` in bf16, where the
loop over unpacked weights measured slower (GrBAL's ``paper`` plan: 7%). Results match ``addmm`` bit for bit in bf16 with ReLU,
within one bf16 rounding with a fused tanh or SiLU (applied before the output is rounded, not
after), and to fp32 rounding (another summation order) in fp32.

The path is off where the op is missing or fails a probe (a torch build without oneDNN, a
processor without bf16 support for bf16),
and can be turned off with ``LEARN2ADAPT_ONEDNN=0`` or :func:`disabled` (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch

#: Activations oneDNN fuses into the linear kernel (our name -> oneDNN's post-op name).
FUSED_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "silu": "swish"}

_enabled = os.environ.get("LEARN2ADAPT_ONEDNN", "1") != "0"


@functools.cache
def available(dtype: torch.dtype = torch.float32) -> bool:
    """Whether this torch build and processor run oneDNN's fused linear in ``dtype`` correctly
    (probed once per dtype: bf16 needs processor support that fp32 does not)."""
    ops = torch.ops.mkldnn
    if not (torch.backends.mkldnn.is_available() and hasattr(ops, "_linear_pointwise")):
        return False
    try:
        x = torch.arange(6.0).reshape(2, 3).to(dtype)
        w = torch.ones(3, 4, dtype=dtype)
        b = torch.full((4,), -4.0, dtype=dtype)
        packed = ops._reorder_linear_weight(w.t().contiguous(), 2)
        out = ops._linear_pointwise(x, packed, b, "relu", [], "")
        return bool(torch.equal(out, torch.relu(x.float() @ w.float() + b.float()).to(dtype)))
    except (RuntimeError, AttributeError, TypeError):
        return False


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the block with the plain ``addmm`` path (for comparisons)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def inference_dtype(x: torch.Tensor, w: torch.Tensor) -> torch.dtype | None:
    """The dtype :func:`layers_inference` computes this call in, or None where it does not apply
    (batched weights in bf16 that are not parameters stay on ``baddbmm``: unpacked, the fused
    loop over groups measured slower)."""
    if not _enabled or torch.is_grad_enabled() or x.device.type != "cpu" or w.device.type != "cpu":
        return None
    autocast = torch.is_autocast_enabled("cpu")
    if not autocast and x.dtype != w.dtype:
        return None
    dtype = torch.get_autocast_dtype("cpu") if autocast else x.dtype
    if dtype not in (torch.float32, torch.bfloat16):
        return None
    if dtype == torch.bfloat16 and w.dim() > 2 and not _reusable(w):
        return None
    return dtype if available(dtype) else None


def usable(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether :func:`layers_inference` applies to this call."""
    return inference_dtype(x, w) is not None


# Weights that are not parameters but are read by many forward passes (per-environment adapted
# weights, used by every horizon step and iteration of one plan): packed once like a parameter.
# (By id with a weak reference: tensors compare elementwise, so a WeakSet cannot hold them.)
_reused: dict[int, weakref.ref] = {}


def mark_reused(weights: Iterable[torch.Tensor]) -> None:
    """Pack these batched weights once and reuse the packing while they are unchanged.

    Why: GrBAL's adapted weights are new at every plan, but one plan evaluates the model
    ``H x iterations`` times with them; left unpacked they run on ``baddbmm`` in bf16, which made
    an adapted ``paper`` plan ~1.3x an unadapted one (docs/experiments.md, "Adapted weights,
    packed"). Packing costs one reorder per layer per plan.
    """
    for w in weights:
        if w.dim() > 2 and w.device.type == "cpu" and not w.requires_grad:
            _reused[id(w)] = weakref.ref(w, functools.partial(_forget_reused, id(w)))


def _forget_reused(key: int, _: weakref.ref) -> None:
    _reused.pop(key, None)


def _reusable(w: torch.Tensor) -> bool:
    if isinstance(w, torch.nn.Parameter):
        return True
    ref = _reused.get(id(w))
    return ref is not None and ref() is w


# Packed weights of parameters (and of weights marked reused), by (id, dtype) (the bf16 check plans a model in both): one per
# group of a batched parameter (ensemble members). An entry holds a weak reference to its tensor
# and dies with it, and is valid while the tensor's version counter is unchanged.
_packed: dict[tuple[int, torch.dtype], tuple[weakref.ref, int, list[torch.Tensor]]] = {}


def _packed_weights(w: torch.Tensor, dtype: torch.dtype, rows: int) -> list[torch.Tensor]:
    """oneDNN's packed ``(out, in)`` copies of a parameter ``w (*batch, in, out)``, one per group."""
    key = (id(w), dtype)
    entry = _packed.get(key)
    if entry is not None and entry[0]() is w and entry[1] == w._version:
        return entry[2]
    flat = w.detach().reshape(-1, *w.shape[-2:]).transpose(-1, -2).to(dtype)
    packed = [torch.ops.mkldnn._reorder_linear_weight(m.contiguous(), rows) for m in flat]

    def forget(_: weakref.ref) -> None:
        _packed.pop(key, None)

    _packed[key] = (weakref.ref(w, forget), w._version, packed)
    return packed


def _group_weights(w: torch.Tensor, dtype: torch.dtype, rows: int) -> Sequence[torch.Tensor]:
    """``w (*batch, in, out)`` as ``(out, in)`` weights per group: packed once for a parameter or
    a tensor marked reused (:func:`mark_reused`), transposed views of other tensors."""
    if _reusable(w):
        return _packed_weights(w, dtype, rows)
    return w.reshape(-1, *w.shape[-2:]).transpose(-1, -2).to(dtype).unbind(0)


def _fused(x: torch.Tensor, w_out_in: torch.Tensor, b: torch.Tensor, activation: str | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, w_out_in, b, FUSED_ACTIVATIONS.get(activation or "", "none"), [], "")


def layers_inference(
    x: torch.Tensor,
    layers: Sequence[tuple[torch.Tensor, torch.Tensor]],
    activations: Sequence[str | None],
    plain_activation: Callable[[torch.Tensor], torch.Tensor] | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``activation(x @ w + b)`` for a stack of linear layers through oneDNN, in ``dtype`` from
    :func:`inference_dtype`; shared weights ``(in, out)`` are one group.

    Batched weights ``(*batch, in, out)`` run one group (ensemble member, environment) at a time
    through every layer before the next group starts, so the only copy is the one that gathers the
    last layer's outputs: gathering each layer's (a ``stack`` per layer) had cost 8% of a PETS
    plan, and a group's activations stay in cache between its layers.

    Args:
        x: inputs ``(..., in)`` for shared weights, ``(*batch, ..., in)`` for batched ones (the
            batch dimensions those of the weights).
        layers: ``(w, b)`` per layer, ``w (*batch, in, out)``, ``b (*batch, out)``.
        activations: per layer, a name or None.
        plain_activation: the activation as a function, applied after a layer where oneDNN
            cannot fuse it.
    """
    groups = math.prod(layers[0][0].shape[:-2])
    rows = x.to(dtype).reshape(groups, -1, x.shape[-1]).contiguous()
    prepared = []
    for (w, b), act in zip(layers, activations):
        fused = act is None or act in FUSED_ACTIVATIONS
        after = None if fused else plain_activation
        prepared.append(
            (_group_weights(w, dtype, rows.shape[1]), b.reshape(groups, -1).to(dtype), act if fused else None, after)
        )
    outputs = []
    for g in range(groups):
        h = rows[g]
        for wt, b2, act, after in prepared:
            h = _fused(h, wt[g], b2[g], act)
            if after is not None:
                h = after(h)
        outputs.append(h)
    out = outputs[0] if groups == 1 else torch.stack(outputs)  # one group: no gathering copy
    return out.view(*x.shape[:-1], layers[-1][0].shape[-1])
