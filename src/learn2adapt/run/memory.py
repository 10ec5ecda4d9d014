"""The memory a run will need, estimated from its configuration before anything is allocated.

A run holds, at its peak: the model's parameters with their gradients and Adam's two moments
(plus the adapted copies of a meta-learning step: about 5 copies in all, per ensemble member),
every transition it will collect (the buffer grows to the whole budget), and one plan's
candidates, states and layer activations. :func:`check_run_memory` refuses, in one line, a
configuration whose estimate exceeds what the machine can still give, so that a size typed by
mistake (``model.hidden=40000x40000``, ``episode_length=2000000000``) fails in milliseconds with
the option to lower, not minutes later in the allocator.

The figures are lower bounds of the dominant terms (float32), not exact accounting.
"""

from __future__ import annotations

from learn2adapt.errors import ConfigError
from learn2adapt.planning import available_memory_bytes
from learn2adapt.run.config import RunConfig

#: Float32 copies of the parameters a fit holds: weights, gradients, Adam's two moments, adapted weights.
PARAMETER_COPIES = 5
GIB = 1 << 30


def model_bytes(cfg: RunConfig, obs_dim: int, act_dim: int) -> int:
    """Parameters of the dynamics MLP (all members) times :data:`PARAMETER_COPIES`, in bytes."""
    widths = [obs_dim + act_dim, *cfg.model.hidden, 2 * obs_dim]  # outputs: mean (and variance)
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    return 4 * PARAMETER_COPIES * cfg.model.ensemble * params


def buffer_bytes(cfg: RunConfig, obs_dim: int, act_dim: int) -> int:
    """Every transition of the whole budget: observation, action, next observation, reward and ids."""
    episodes = cfg.random_episodes + cfg.iterations * cfg.episodes_per_iteration
    return 4 * episodes * cfg.episode_length * (2 * obs_dim + act_dim + 4)


def planning_bytes(cfg: RunConfig, obs_dim: int, act_dim: int) -> int:
    """One plan: ``num_envs x N x particles x (H x act_dim + 4 obs_dim + 3 width)`` float32 values."""
    p = cfg.planner
    per_candidate = p.horizon * act_dim + 4 * obs_dim + 3 * max(cfg.model.hidden)
    return 4 * cfg.num_envs * p.num_candidates * p.particles * per_candidate


def check_run_memory(cfg: RunConfig, obs_dim: int, act_dim: int, available: int | None = None) -> None:
    """Refuse a configuration whose estimated peak memory exceeds the available memory.

    Args:
        cfg: the run's configuration (validated).
        obs_dim, act_dim: the environment's sizes.
        available: bytes the machine can give (default: ``MemAvailable``; unknown: no check).

    Raises:
        ConfigError: naming the largest part and the options that set it.
    """
    have = available_memory_bytes() if available is None else available
    if have is None:
        return
    parts = {
        "the model and its optimiser": (model_bytes(cfg, obs_dim, act_dim), "model.hidden or model.ensemble"),
        "the collected transitions": (
            buffer_bytes(cfg, obs_dim, act_dim),
            "episode_length, random_episodes, iterations or episodes_per_iteration",
        ),
        "planning": (
            planning_bytes(cfg, obs_dim, act_dim),
            "planner.num_candidates, planner.particles, planner.horizon or num_envs",
        ),
    }
    need = sum(size for size, _ in parts.values())
    if need > have:
        largest = max(parts, key=lambda k: parts[k][0])
        size, options = parts[largest]
        raise ConfigError(
            f"this run would need about {need / GIB:.1f} GiB, more than the {have / GIB:.1f} GiB available; "
            f"most of it ({size / GIB:.1f} GiB) for {largest}: lower {options}"
        )
