"""MPC planners over a learned (adapted) dynamics model, batched over environments.

Use :func:`make_planner` with a :class:`PlannerConfig` or a planner name.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from learn2adapt.errors import ConfigError, UnknownName
from learn2adapt.planning.base import Planner
from learn2adapt.planning.config import PlannerConfig
from learn2adapt.types import PredictFn, RewardFn, TerminationFn


@dataclass(frozen=True)
class PlannerEntry:
    """One registered planner: where it lives and which ``PlannerConfig`` section holds its options."""

    module: str
    cls: str
    section: str | None  # attribute of PlannerConfig (None: no options of its own)


#: The planner registry: ``planner.name`` -> :class:`PlannerEntry`. Order is the order shown to users.
PLANNERS: dict[str, PlannerEntry] = {
    "rs": PlannerEntry("learn2adapt.planning.random_shooting", "RandomShooting", None),
    "cem": PlannerEntry("learn2adapt.planning.cem", "CEM", "cem"),
    "mppi": PlannerEntry("learn2adapt.planning.mppi", "MPPI", "mppi"),
    "icem": PlannerEntry("learn2adapt.planning.icem", "ICEM", "icem"),
}
#: Other accepted spellings.
ALIASES = {"random": "rs", "random_shooting": "rs"}
#: Options every planner takes (``planner.*`` outside the per-planner sections).
SHARED_OPTIONS = ("horizon", "num_candidates", "precision", "particles", "propagation", "cuda_graph")

__all__ = [
    "PLANNERS",
    "Planner",
    "PlannerConfig",
    "PredictFn",
    "RewardFn",
    "TerminationFn",
    "canonical_name",
    "make_planner",
    "planner_class",
]


def canonical_name(name: str) -> str:
    """The registered name of a planner given by any accepted spelling (``random`` -> ``rs``).

    Raises:
        UnknownName: listing the registered names.
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PLANNERS:
        raise UnknownName(f"unknown planner {name!r}; available: {', '.join(PLANNERS)}")
    return key


def planner_class(name: str) -> type[Planner]:
    """The planner class registered under ``name`` (:class:`UnknownName` listing the names if unknown)."""
    entry = PLANNERS[canonical_name(name)]
    return getattr(importlib.import_module(entry.module), entry.cls)


def make_planner(
    name: str | PlannerConfig,
    action_low: Any,
    action_high: Any,
    *,
    num_envs: int | None = None,
    device: str | torch.device = "cpu",
    seed: int | Sequence[int] = 0,
    **kwargs: Any,
) -> Planner:
    """Build a planner from a config or a name.

    Args:
        name: a :class:`PlannerConfig` (the planner's own section, e.g. ``cfg.cem``, is
            passed on as ``options``), or a planner name (``rs``, ``cem``, ``mppi``, ``icem``).
        action_low: lower action bounds ``(act_dim,)``.
        action_high: upper action bounds ``(act_dim,)``.
        num_envs: environments planned for at once (optional; see :class:`Planner`).
        device: torch device.
        seed: int, or one seed per environment slot.
        **kwargs: shared options (``horizon``, ``num_candidates``, ``precision``) and the
            fields of the planner's own section (e.g. ``iterations=5`` for CEM); they
            override the config's.

    Raises:
        UnknownName: unknown planner name.
        ConfigError: an option the planner does not have, or a value it refuses.
    """
    cfg = name if isinstance(name, PlannerConfig) else PlannerConfig(name=name)
    key = canonical_name(cfg.name)
    entry = PLANNERS[key]
    cls = planner_class(key)
    section = getattr(cfg, entry.section) if entry.section else None
    own = {f.name for f in dataclasses.fields(section)} if section is not None else set()
    unknown = sorted(set(kwargs) - own - set(SHARED_OPTIONS))
    if unknown:
        accepted = ", ".join([*SHARED_OPTIONS, *sorted(own)])
        raise ConfigError(f"planner {cls.__name__} has no option {unknown[0]!r}; its options: {accepted}")
    shared = {k: kwargs.get(k, getattr(cfg, k)) for k in SHARED_OPTIONS}
    if section is not None:
        shared["options"] = dataclasses.replace(section, **{k: v for k, v in kwargs.items() if k in own})
    return cls(action_low, action_high, num_envs=num_envs, device=device, seed=seed, **shared)


def available_memory_bytes() -> int | None:
    """Memory the system can still give (``MemAvailable`` on Linux); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
