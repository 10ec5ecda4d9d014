"""The policy of ``learn2adapt record --policy RUN``: a trained run's controller, loaded as any run
is (:mod:`learn2adapt.experiments.runs`); the recording itself is :mod:`learn2adapt.run.record`."""

from __future__ import annotations

from pathlib import Path

from learn2adapt.errors import ConfigError
from learn2adapt.experiments.runs import load_any
from learn2adapt.run.state import RunState


def load_policy_run(run_dir: Path) -> RunState:
    """A trained model-based run whose controller is to act (``record --policy RUN_DIR``)."""
    loaded = load_any(Path(run_dir))
    if not isinstance(loaded, RunState):
        raise ConfigError(f"--policy {run_dir}: a {loaded.cfg.algo} run has no model-based controller to record")
    return loaded
