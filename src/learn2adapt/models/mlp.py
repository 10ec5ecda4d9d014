"""A functional MLP whose weights may carry leading batch dimensions.

Weights are stored as ``(in, out)`` so that ``x @ W`` needs no transpose, and
``forward`` accepts an explicit parameter dict: GrBAL passes adapted weights,
one set per environment (``W`` of shape ``(E, in, out)``), and the same code
evaluates all environments' candidates in one batched matmul. An ensemble's MLP
(``members = B``) stores ``W (B, in, out)``; adapted, ``(B, E, in, out)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from learn2adapt.errors import UnknownName
from learn2adapt.models import onednn

Params = Mapping[str, torch.Tensor]

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "silu": nn.functional.silu, "elu": nn.functional.elu}


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    """``activation(x @ w + b)`` with fused kernels for shared or batched weights.

    Shapes: ``x (..., in)`` with a shared ``w (in, out)``; or batched weights
    ``w (*batch, in, out)``, ``b (*batch, out)`` with ``x (*batch, ..., in)``, every
    dimension of ``x`` after the weights' batch dimensions taken as rows (one ``bmm``).
    ``activation``: a name in :data:`ACTIVATIONS`, or None. Without gradients on the CPU
    the layer runs through oneDNN (:mod:`learn2adapt.models.onednn`: 1.2-2.6x faster there).
    """
    dtype = onednn.inference_dtype(x, w)
    if dtype is not None:
        return onednn.layers_inference(x, [(w, b)], [activation], ACTIVATIONS.get(activation or ""), dtype)
    z = _affine(x, w, b)
    return z if activation is None else ACTIVATIONS[activation](z)


def _affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if w.dim() == 2:
        if x.dim() == 2:
            return torch.addmm(b, x, w)
        lead = x.shape[:-1]
        return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*lead, w.shape[1])
    if x.dim() == 3 and w.dim() == 3:
        return torch.baddbmm(b.unsqueeze(1), x, w)
    groups = math.prod(w.shape[:-2])
    rows = x.reshape(groups, -1, x.shape[-1])
    z = torch.baddbmm(b.reshape(groups, 1, -1), rows, w.reshape(groups, *w.shape[-2:]))
    return z.view(*x.shape[:-1], w.shape[-1])


class MLP(nn.Module):
    """Fully connected network ``in_dim -> hidden... -> out_dim``.

    Args:
        in_dim: input size.
        out_dim: output size.
        hidden: hidden layer widths.
        activation: one of :data:`ACTIVATIONS`.
        members: 0 for one network; ``B >= 1`` for ``B`` independent networks (an ensemble)
            stored as a leading dimension of every weight, evaluated in one ``bmm`` a layer
            on inputs ``(B, ..., in)``.
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden: Sequence[int], activation: str = "relu", members: int = 0
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise UnknownName(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
        self.activation = ACTIVATIONS[activation]
        self.activation_name = activation
        sizes = [in_dim, *hidden, out_dim]
        self.num_layers = len(sizes) - 1
        self.members = int(members)
        lead = (self.members,) if self.members else ()
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            # PyTorch's default Linear initialisation (Kaiming-uniform with a=sqrt(5)), per member.
            bound = 1.0 / math.sqrt(a)
            self.register_parameter(f"w{i}", nn.Parameter(torch.empty(*lead, a, b).uniform_(-bound, bound)))
            self.register_parameter(f"b{i}", nn.Parameter(torch.empty(*lead, b).uniform_(-bound, bound)))

    def weight_matrices(self) -> list[nn.Parameter]:
        """The layers' weights ``w{i}`` (what ``fit.weight_decay`` penalises; the biases are not)."""
        return [getattr(self, f"w{i}") for i in range(self.num_layers)]

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        p = dict(self.named_parameters()) if params is None else params
        last = self.num_layers - 1
        activations = [self.activation_name if i < last else None for i in range(self.num_layers)]
        dtype = onednn.inference_dtype(x, p["w0"])
        if dtype is not None and p["w0"].dim() > 2:  # batched weights: every layer of a group at once
            layers = [(p[f"w{i}"], p[f"b{i}"]) for i in range(self.num_layers)]
            return onednn.layers_inference(x, layers, activations, self.activation, dtype)
        for i in range(self.num_layers):
            x = linear(x, p[f"w{i}"], p[f"b{i}"], activations[i])
        return x
