"""MPC planners over a learned (adapted) dynamics model, batched over environments.

Use :func:`make_planner` with a :class:`PlannerConfig` or a planner name.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, Optional, Sequence, Union

import torch

from learn2adapt.planning.base import Planner
from learn2adapt.types import PredictFn, RewardFn, TerminationFn
from learn2adapt.planning.config import PlannerConfig
from learn2adapt.errors import ConfigError, UnknownName

#: name -> (module, class, prefix of its options in PlannerConfig).
PLANNERS: dict[str, tuple[str, str, str]] = {
    "rs": ("learn2adapt.planning.random_shooting", "RandomShooting", "rs"),
    "cem": ("learn2adapt.planning.cem", "CEM", "cem"),
    "mppi": ("learn2adapt.planning.mppi", "MPPI", "mppi"),
    "icem": ("learn2adapt.planning.icem", "ICEM", "icem"),
}
#: Other accepted spellings.
ALIASES = {"random": "rs", "random_shooting": "rs"}

__all__ = ["PLANNERS", "Planner", "PlannerConfig", "PredictFn", "RewardFn", "TerminationFn", "make_planner", "planner_class"]


def planner_class(name: str) -> type[Planner]:
    """The planner class registered under ``name`` (ValueError listing the names if unknown)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PLANNERS:
        raise UnknownName(f"unknown planner {name!r}; available: {', '.join(PLANNERS)}")
    module, cls, _ = PLANNERS[key]
    return getattr(importlib.import_module(module), cls)


def make_planner(
    name: Union[str, PlannerConfig],
    action_low: Any,
    action_high: Any,
    *,
    num_envs: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    seed: Union[int, Sequence[int]] = 0,
    **kwargs: Any,
) -> Planner:
    """Build a planner from a config or a name.

    Args:
        name: a :class:`PlannerConfig` (its ``<name>_`` options are passed on without the
            prefix), or a planner name (``rs``, ``cem``, ``mppi``, ``icem``).
        action_low: lower action bounds ``(act_dim,)``.
        action_high: upper action bounds ``(act_dim,)``.
        num_envs: environments planned for at once (optional; see :class:`Planner`).
        device: torch device.
        seed: int, or one seed per environment slot.
        **kwargs: planner options, e.g. ``horizon=10, num_candidates=500, iterations=5``;
            they override the config's.

    Raises:
        ValueError: unknown planner name or option.
    """
    if isinstance(name, PlannerConfig):
        cfg = name
        key = ALIASES.get(cfg.name.lower(), cfg.name.lower())
        cls = planner_class(key)
        prefix = PLANNERS[key][2] + "_"
        options: dict[str, Any] = {"horizon": cfg.horizon, "num_candidates": cfg.num_candidates, "precision": cfg.precision}
        for f in dataclasses.fields(cfg):
            if f.name.startswith(prefix):
                options[f.name[len(prefix):]] = getattr(cfg, f.name)
    else:
        cls = planner_class(name)
        defaults = PlannerConfig()
        options = {"horizon": defaults.horizon, "num_candidates": defaults.num_candidates}
    options.update(kwargs)
    accepted = _options_of(cls)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"planner {cls.__name__} has no option {unknown[0]!r}; its options: {', '.join(sorted(accepted))}")
    return cls(action_low, action_high, num_envs=num_envs, device=device, seed=seed, **options)


def _options_of(cls: type) -> set[str]:
    """Keyword arguments accepted by ``cls`` and its bases (excluding the factory's own)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {p.name for p in inspect.signature(init).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self", "action_low", "action_high", "num_envs", "device", "seed"}
