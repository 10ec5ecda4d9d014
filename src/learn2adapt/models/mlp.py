"""A functional MLP whose weights may carry a leading batch dimension.

Weights are stored as ``(in, out)`` so that ``x @ W`` needs no transpose, and
``forward`` accepts an explicit parameter dict: GrBAL passes adapted weights,
one set per environment (``W`` of shape ``(E, in, out)``), and the same code
evaluates all environments' candidates in one batched matmul.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from learn2adapt.errors import UnknownName

Params = Mapping[str, torch.Tensor]

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "silu": nn.functional.silu, "elu": nn.functional.elu}


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x @ w + b`` with fused kernels for shared or per-batch weights.

    Shapes: ``x (..., in)`` with ``w (in, out)``, or ``x (E, n, in)`` with
    ``w (E, in, out)`` and ``b (E, out)``.
    """
    if w.dim() == 2:
        if x.dim() == 2:
            return torch.addmm(b, x, w)
        lead = x.shape[:-1]
        return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*lead, w.shape[1])
    return torch.baddbmm(b.unsqueeze(1), x, w)


class MLP(nn.Module):
    """Fully connected network ``in_dim -> hidden... -> out_dim``.

    Args:
        in_dim: input size.
        out_dim: output size.
        hidden: hidden layer widths.
        activation: one of :data:`ACTIVATIONS`.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise UnknownName(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
        self.activation = ACTIVATIONS[activation]
        sizes = [in_dim, *hidden, out_dim]
        self.num_layers = len(sizes) - 1
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            # PyTorch's default Linear initialisation (Kaiming-uniform with a=sqrt(5)).
            bound = 1.0 / math.sqrt(a)
            self.register_parameter(f"w{i}", nn.Parameter(torch.empty(a, b).uniform_(-bound, bound)))
            self.register_parameter(f"b{i}", nn.Parameter(torch.empty(b).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        p = dict(self.named_parameters()) if params is None else params
        last = self.num_layers - 1
        for i in range(self.num_layers):
            x = linear(x, p[f"w{i}"], p[f"b{i}"])
            if i < last:
                x = self.activation(x)
        return x
