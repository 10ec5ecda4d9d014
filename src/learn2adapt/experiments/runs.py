"""Any run, model-based (learn2adapt.run) or model-free (learn2adapt.baselines): one entry to train and load."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from learn2adapt.adaptation import REGISTRY
from learn2adapt.baselines import BaselineState, load_baseline, train_baseline
from learn2adapt.errors import UserError
from learn2adapt.run.config import RunConfig
from learn2adapt.run.loop import train
from learn2adapt.run.options import load_config
from learn2adapt.run.run_dir import no_config_error
from learn2adapt.run.state import RunState, load_run, with_online_rule

#: What :func:`load_any` returns: both have ``cfg``, ``iteration``, ``train_env_steps`` and ``controller()``.
AnyRun = RunState | BaselineState


def is_model_free(algo: str) -> bool:
    return algo in REGISTRY and REGISTRY[algo].model_free


def train_any(
    cfg: RunConfig | None,
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    changes: dict[str, str] | None = None,
    probe: Callable[[Any], dict[str, float]] | None = None,
) -> AnyRun:
    """:func:`~learn2adapt.run.loop.train` or :func:`~learn2adapt.baselines.train_baseline`, by algorithm.

    ``probe``: called with the run after every iteration (model-based) or checkpoint
    (model-free); its figures join the ``metrics.csv`` row (see :func:`heldout_probe`).
    """
    algo = cfg.algo if cfg is not None else _saved_algo(Path(run_dir))
    if is_model_free(algo):
        return train_baseline(cfg, run_dir, resume, progress, changes, probe)
    return train(cfg, run_dir, resume, progress, changes, probe)


def probe_key(planner: str | None = None) -> str:
    """The ``metrics.csv`` column of :func:`heldout_probe`'s held-out return (with ``planner``: planned with it)."""
    return "heldout_return" if planner is None else f"heldout_return@{planner}"


def heldout_probe(
    episodes: int = 1, schedule: str = "fixed", seed: int = 0, planners: Sequence[str] = ()
) -> Callable[[Any], dict[str, float]]:
    """A probe measuring the held-out return during training (the sample-efficiency curve), with the
    run's own planner and, for a model-based run, with each of ``planners`` (:func:`probe_key`)."""

    def probe(run: Any) -> dict[str, float]:
        from learn2adapt.evaluation.protocol import evaluate, torch_rng_preserved
        from learn2adapt.evaluation.results import planner_change

        def heldout(r: Any) -> float:
            result = evaluate(r, episodes, seed=seed, progress=False, schedule=schedule, measure_model=False)
            return round(result.mean, 4)

        figures = {probe_key(): heldout(run)}
        for planner in planners if isinstance(run, RunState) else ():
            with torch_rng_preserved():  # building the rule draws weights: the run's own stream must not move
                planned = with_online_rule(run, run.cfg.algo, planner_change(planner))
            figures[probe_key(planner)] = heldout(planned)
        return figures

    return probe


def load_any(run_dir: Path) -> AnyRun:
    """A trained run of any kind, for evaluation."""
    return load_baseline(run_dir) if is_model_free(_saved_algo(Path(run_dir))) else load_run(run_dir)


def _saved_algo(run_dir: Path) -> str:
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    path = run_dir / "config.json"
    if not path.exists():
        raise no_config_error(run_dir)
    return load_config(path, device="cpu").algo  # the algorithm only: on whichever device the run is used
