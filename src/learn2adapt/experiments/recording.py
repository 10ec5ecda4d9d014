"""What ``learn2adapt record`` does: episodes of random actions or of a trained run's controller,
written as a recording (:mod:`learn2adapt.run.record`) that ``train --offline`` meta-trains from."""

from __future__ import annotations

from pathlib import Path

from learn2adapt.data.recorded import Recording
from learn2adapt.errors import ConfigError
from learn2adapt.experiments.runs import load_any
from learn2adapt.run.config import RunConfig, check_schedule
from learn2adapt.run.record import record
from learn2adapt.run.run_dir import check_writable
from learn2adapt.run.state import RunState


def load_policy_run(run_dir: Path) -> RunState:
    """A trained model-based run whose controller is to act (``record --policy RUN_DIR``)."""
    loaded = load_any(Path(run_dir))
    if not isinstance(loaded, RunState):
        raise ConfigError(f"--policy {run_dir}: a {loaded.cfg.algo} run has no model-based controller to record")
    return loaded


def record_episodes(
    cfg: RunConfig,
    episodes: int,
    out: Path,
    run: RunState | None = None,
    split: str = "train",
    schedule: str = "fixed",
    seed: int | None = None,
    progress: bool = True,
) -> Recording:
    """:func:`~learn2adapt.run.record.record` into ``out`` (its folder created and checked writable
    first); ``seed`` defaults to ``cfg.seed``."""
    check_schedule(schedule)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_writable(out.parent)
    return record(cfg, episodes, out, run, split, schedule, cfg.seed if seed is None else seed, progress=progress)
