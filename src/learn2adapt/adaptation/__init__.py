"""Adaptation rules by name: MB, MB+DE, GrBAL, ReBAL (Nagabandi, Clavera et al., ICLR 2019).

``make_rule(algo, ...)`` builds the rule ``--algo`` names. Rules are imported lazily,
so importing this package stays cheap and a rule whose module is missing (still being
written, or removed) only disappears from :data:`ALGORITHMS` instead of breaking the
others.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

import torch
from learn2adapt.errors import UnknownName

if TYPE_CHECKING:  # pragma: no cover
    from learn2adapt.adaptation.base import AdaptationRule
    from learn2adapt.adaptation.config import AdaptationConfig
    from learn2adapt.models.config import FitConfig, ModelConfig

#: ``algo`` name -> (module, class). Order is the order shown to users.
_REGISTRY: dict[str, tuple[str, str]] = {
    "mb": ("learn2adapt.adaptation.mb", "ModelBased"),
    "mbde": ("learn2adapt.adaptation.dynamic_eval", "DynamicEvaluation"),
    "grbal": ("learn2adapt.adaptation.grbal", "GrBAL"),
    # ReBAL lives in its own module (adaptation/rebal.py); listed only if it is present.
    "rebal": ("learn2adapt.adaptation.rebal", "ReBAL"),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


#: Names accepted by :func:`make_rule` (and ``--algo``).
ALGORITHMS: tuple[str, ...] = tuple(name for name, (module, _) in _REGISTRY.items() if _available(module))


def rule_class(algo: str) -> type["AdaptationRule"]:
    """The :class:`AdaptationRule` subclass registered as ``algo``.

    Raises:
        ValueError: ``algo`` is not one of :data:`ALGORITHMS`.
    """
    if algo not in ALGORITHMS:
        raise UnknownName(f"unknown algorithm {algo!r}; available: {', '.join(ALGORITHMS)}")
    module, name = _REGISTRY[algo]
    return getattr(importlib.import_module(module), name)


def make_rule(
    algo: str,
    obs_dim: int,
    act_dim: int,
    model_cfg: "ModelConfig",
    fit_cfg: "FitConfig",
    adapt_cfg: "AdaptationConfig",
    device: str | torch.device = "cpu",
) -> "AdaptationRule":
    """Build the adaptation rule ``algo`` for an environment of the given sizes.

    Raises:
        ValueError: unknown ``algo`` (the message lists the available ones).
    """
    return rule_class(algo)(obs_dim, act_dim, model_cfg, fit_cfg, adapt_cfg, device)


__all__ = ["ALGORITHMS", "make_rule", "rule_class"]
