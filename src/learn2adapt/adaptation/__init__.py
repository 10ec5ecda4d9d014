"""The algorithm registry: every adaptation rule by its ``--algo`` name (Nagabandi, Clavera et al., ICLR 2019).

:data:`REGISTRY` is the one list of algorithms: the CLI's help and errors, the config's
checks, the preset tables and the report's labels and colours all read it. Rules are
imported lazily (:func:`rule_class`), so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from learn2adapt.errors import ConfigError, UnknownName

if TYPE_CHECKING:  # pragma: no cover
    from learn2adapt.adaptation.base import AdaptationRule
    from learn2adapt.adaptation.config import AdaptationConfig
    from learn2adapt.models.config import FitConfig, ModelConfig


@dataclass(frozen=True)
class Algorithm:
    """One registered algorithm: where its rule lives and how reports show it."""

    module: str
    cls: str
    label: str  # in tables and plots
    color: str  # matplotlib colour, stable across plots
    summary: str  # one line for help texts
    in_paper: bool = True  # one of the paper's four methods (compared by default)
    model_free: bool = False  # a policy trained by stable-baselines3, not a dynamics model + MPC
    ensembles: bool = False  # runs on a probabilistic ensemble too (model.ensemble > 1: PE-TS + this rule)
    #: The meta-trained model its checkpoints hold: rules with the same prior evaluate each
    #: other's runs (``eval --online``). Empty: a model of its own.
    prior: str = ""
    evaluation_only: bool = False  # an online rule for ``eval --online`` only; never trained


#: ``--algo`` name -> :class:`Algorithm`. Order is the order shown to users.
REGISTRY: dict[str, Algorithm] = {
    "mb": Algorithm(
        "learn2adapt.adaptation.mb",
        "ModelBased",
        "MB",
        "tab:red",
        "one global dynamics model, no adaptation",
        ensembles=True,
    ),
    "mbde": Algorithm(
        "learn2adapt.adaptation.dynamic_eval",
        "DynamicEvaluation",
        "MB+DE",
        "tab:orange",
        "MB plus gradient steps on the recent past at test time (dynamic evaluation)",
        ensembles=True,
    ),
    "grbal": Algorithm(
        "learn2adapt.adaptation.grbal",
        "GrBAL",
        "GrBAL",
        "tab:blue",
        "meta-trained for a gradient step on the last M transitions (MAML)",
        ensembles=True,
        prior="grbal",
    ),
    "rebal": Algorithm(
        "learn2adapt.adaptation.rebal",
        "ReBAL",
        "ReBAL",
        "tab:green",
        "meta-trained recurrent model that reads the last M transitions",
        ensembles=True,
    ),
    "mole": Algorithm(
        "learn2adapt.adaptation.mole",
        "MOLe",
        "MOLe",
        "tab:purple",
        "GrBAL's meta-trained prior plus an online mixture of task models that remembers past dynamics",
        in_paper=False,
        prior="grbal",
    ),
    "mole-oracle": Algorithm(
        "learn2adapt.adaptation.mole",
        "OracleIdentityMixture",
        "MOLe (true task)",
        "tab:pink",
        "evaluation only: MOLe's mixture told the true task (one model per task, recalled exactly), "
        "an upper bound on recall",
        in_paper=False,
        prior="grbal",
        evaluation_only=True,
    ),
    "ppo": Algorithm(
        "stable_baselines3",
        "PPO",
        "PPO",
        "tab:gray",
        "model-free baseline: proximal policy optimisation (stable-baselines3) on the training tasks",
        in_paper=False,
        model_free=True,
    ),
    "sac": Algorithm(
        "stable_baselines3",
        "SAC",
        "SAC",
        "tab:brown",
        "model-free baseline: soft actor-critic (stable-baselines3) on the training tasks",
        in_paper=False,
        model_free=True,
    ),
}

#: What ``--algo`` trains (every registered name but the evaluation-only rules, which
#: :func:`make_rule` builds for ``eval --online`` too).
ALGORITHMS: tuple[str, ...] = tuple(name for name, a in REGISTRY.items() if not a.evaluation_only)
#: Model-free baselines (trained by :mod:`learn2adapt.baselines`).
MODEL_FREE: tuple[str, ...] = tuple(name for name, a in REGISTRY.items() if a.model_free)
#: Rules that also run on a probabilistic ensemble (``model.ensemble > 1``).
ENSEMBLE_ALGORITHMS: tuple[str, ...] = tuple(name for name, a in REGISTRY.items() if a.ensembles)
#: Online rules that are never trained, only used to evaluate another rule's run (``eval --online``).
EVALUATION_ONLY: tuple[str, ...] = tuple(name for name, a in REGISTRY.items() if a.evaluation_only)
#: The paper's methods: what ``compare`` runs unless told otherwise.
PAPER_ALGORITHMS: tuple[str, ...] = tuple(name for name, a in REGISTRY.items() if a.in_paper)


def label(algo: str) -> str:
    """How reports name ``algo`` (the name itself if it is not registered)."""
    return REGISTRY[algo].label if algo in REGISTRY else algo


def color(algo: str) -> str | None:
    """The plot colour of ``algo`` (None: matplotlib's next)."""
    return REGISTRY[algo].color if algo in REGISTRY else None


def check_algo(algo: str) -> None:
    """Raise :class:`UnknownName` listing the algorithms if ``algo`` is not one."""
    if algo not in REGISTRY:
        raise UnknownName(f"unknown algorithm {algo!r}; available: {', '.join(ALGORITHMS)}")


def same_prior(a: str, b: str) -> bool:
    """Whether rules ``a`` and ``b`` run on the same meta-trained model (one evaluates the other's run)."""
    check_algo(a)
    check_algo(b)
    return bool(REGISTRY[a].prior) and REGISTRY[a].prior == REGISTRY[b].prior


def rule_class(algo: str) -> type[AdaptationRule]:
    """The :class:`AdaptationRule` subclass registered as ``algo``.

    Raises:
        UnknownName: ``algo`` is not one of :data:`ALGORITHMS`.
    """
    check_algo(algo)
    entry = REGISTRY[algo]
    if entry.model_free:
        raise ConfigError(f"{algo} is a model-free baseline, not an adaptation rule (learn2adapt.baselines trains it)")
    return getattr(importlib.import_module(entry.module), entry.cls)


def make_rule(
    algo: str,
    obs_dim: int,
    act_dim: int,
    model_cfg: ModelConfig,
    fit_cfg: FitConfig,
    adapt_cfg: AdaptationConfig,
    device: str | torch.device = "cpu",
) -> AdaptationRule:
    """Build the adaptation rule ``algo`` for an environment of the given sizes.

    Raises:
        UnknownName: unknown ``algo`` (the message lists the available ones).
    """
    return rule_class(algo)(obs_dim, act_dim, model_cfg, fit_cfg, adapt_cfg, device)


__all__ = [
    "ALGORITHMS",
    "ENSEMBLE_ALGORITHMS",
    "EVALUATION_ONLY",
    "REGISTRY",
    "Algorithm",
    "check_algo",
    "color",
    "label",
    "make_rule",
    "rule_class",
    "same_prior",
]
