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

So :func:`linear_inference` runs ``activation(x @ w + b)`` as ``torch.ops.mkldnn._linear_pointwise``
(the op PyTorch's own compiler emits for CPU linear layers) when :func:`inference_dtype` says so: CPU
tensors, gradients disabled, fp32 or bf16 compute (autocast's dtype, when autocast is on).
Shared ``(in, out)`` weights that are a module's parameters are packed once and
reused until they change (their version counter moves at every optimiser step or load);
batched weights ``(*batch, in, out)`` (adapted per environment, ensemble members) run one
fused call per group in fp32 and stay on ``baddbmm`` in bf16, where such a loop measured no
faster. Results match ``addmm`` bit for bit in bf16 with ReLU, within one bf16 rounding with a
fused tanh or SiLU (applied before the output is rounded, not after), and to fp32 rounding
(another summation order) in fp32.

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
from collections.abc import Callable, Iterator

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
    """The dtype :func:`linear_inference` computes this call in, or None where it does not apply
    (batched weights in bf16 stay on ``baddbmm``: one fused call per group measured no faster)."""
    if not _enabled or torch.is_grad_enabled() or x.device.type != "cpu" or w.device.type != "cpu":
        return None
    autocast = torch.is_autocast_enabled("cpu")
    if not autocast and x.dtype != w.dtype:
        return None
    dtype = torch.get_autocast_dtype("cpu") if autocast else x.dtype
    if not (dtype == torch.float32 or (w.dim() == 2 and dtype == torch.bfloat16)):
        return None
    return dtype if available(dtype) else None


def usable(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether :func:`linear_inference` applies to this call."""
    return inference_dtype(x, w) is not None


# Packed weights of parameters, by (id, dtype) (the bf16 check plans a model in both); an entry
# holds a weak reference to its tensor and dies with it, and is valid while the tensor's version
# counter is unchanged.
_packed: dict[tuple[int, torch.dtype], tuple[weakref.ref, int, torch.Tensor]] = {}


def _packed_weight(w: torch.Tensor, dtype: torch.dtype, rows: int) -> torch.Tensor:
    key = (id(w), dtype)
    entry = _packed.get(key)
    if entry is not None and entry[0]() is w and entry[1] == w._version:
        return entry[2]
    packed = torch.ops.mkldnn._reorder_linear_weight(w.detach().t().contiguous().to(dtype), rows)

    def forget(_: weakref.ref) -> None:
        _packed.pop(key, None)

    _packed[key] = (weakref.ref(w, forget), w._version, packed)
    return packed


def _fused(x: torch.Tensor, w_out_in: torch.Tensor, b: torch.Tensor, activation: str | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, w_out_in, b, FUSED_ACTIVATIONS.get(activation or "", "none"), [], "")


def linear_inference(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    activation: str | None,
    plain_activation: Callable[[torch.Tensor], torch.Tensor] | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``activation(x @ w + b)`` through oneDNN, in ``dtype`` from :func:`inference_dtype`.

    Args:
        x: inputs ``(..., in)`` for shared weights, ``(*batch, ..., in)`` for batched ones.
        w: ``(in, out)`` or ``(*batch, in, out)``.
        b: ``(out,)`` or ``(*batch, out)``.
        activation: a name, or None for none.
        plain_activation: the activation as a function, applied after the linear layer when
            oneDNN cannot fuse it.
    """
    fusable = activation is None or activation in FUSED_ACTIVATIONS
    x = x.to(dtype)
    if w.dim() == 2:
        rows = x.reshape(-1, x.shape[-1]).contiguous()
        weight = _packed_weight(w, dtype, rows.shape[0]) if isinstance(w, torch.nn.Parameter) else w.t().to(dtype)
        z = _fused(rows, weight, b.to(dtype), activation if fusable else None).view(*x.shape[:-1], w.shape[-1])
    else:  # batched fp32 weights: one fused call per group
        groups = math.prod(w.shape[:-2])
        rows = x.reshape(groups, -1, x.shape[-1]).contiguous()
        wt = w.reshape(groups, *w.shape[-2:]).transpose(-1, -2).to(dtype)
        b2 = b.reshape(groups, -1).to(dtype)
        act = activation if fusable else None
        z = torch.stack([_fused(rows[g], wt[g], b2[g], act) for g in range(groups)]).view(*x.shape[:-1], w.shape[-1])
    if activation is not None and not fusable and plain_activation is not None:
        z = plain_activation(z)
    return z
