"""The oracle of a comparison (``compare --oracle``): MPC with the simulator as its model.

Evaluated per seed and schedule with the planner of the first model-based entry (and, with
``--eval-planners``, with each of those planners), on the runs' evaluation seeds, hence their
initial states; the report sets it against the runs as the return a perfect model would reach
(:mod:`learn2adapt.evaluation.oracle`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from learn2adapt.adaptation import MODEL_FREE
from learn2adapt.planning import canonical_name
from learn2adapt.run.config import ConfigError, RunConfig
from learn2adapt.run.options import apply_overrides

if TYPE_CHECKING:
    from learn2adapt.evaluation.results import EvalResult


def check_oracle_comparison(env: str, configs: Sequence[RunConfig]) -> None:
    """Before anything runs: the oracle needs a model-based entry's planner and a MuJoCo family.

    Raises:
        ConfigError: every compared algorithm is model-free, or ``env`` has no simulator to plan with.
    """
    from learn2adapt.evaluation.oracle import check_oracle

    if all(c.algo in MODEL_FREE for c in configs):
        raise ConfigError("--oracle uses the planner of a model-based algorithm; none is compared")
    check_oracle(env)


def evaluate_oracle(
    configs: Sequence[RunConfig],
    seeds: Sequence[int],
    schedules: Sequence[str],
    episodes: int | None,
    out: Path,
    progress: bool,
    reuse_stale: bool = False,
    planner: str | None = None,
) -> dict[str, list[EvalResult]]:
    """The oracle under every schedule, once per seed (its evaluation seed: as the runs'); files
    reused if this code wrote them (or any code, with ``reuse_stale``).

    ``planner``: plan with it instead of the first model-based algorithm's planner; its files go to
    ``out/planner-<planner>/`` unless it is that algorithm's own planner (``out/``, as without).
    """
    from learn2adapt.evaluation.oracle import OracleRun
    from learn2adapt.evaluation.protocol import evaluate
    from learn2adapt.evaluation.results import load_current, save_protocol, set_aside_stale

    planned = next((c for c in configs if c.algo not in MODEL_FREE), None)
    assert planned is not None  # checked by compare() before any training
    if planner is not None and planner != canonical_name(planned.planner.name):
        planned = apply_overrides(copy.deepcopy(planned), [f"planner.name={planner}"]).validate()
        out = out / f"planner-{planner}"
    found: dict[str, list[EvalResult]] = {s: [] for s in schedules}
    for seed in seeds:
        path = out / f"s{seed}.json"
        saved = load_current(path, reuse_stale)
        for spec in schedules:
            if spec not in saved:
                if progress:
                    print(f"[oracle seed {seed}] evaluating on held-out tasks, schedule {spec}", flush=True)
                cfg = dataclasses.replace(planned, seed=seed)
                saved[spec] = evaluate(
                    OracleRun(cfg), episodes, seed=seed, progress=progress, schedule=spec, measure_model=False
                )
                saved[spec].algo = "oracle"
                out.mkdir(parents=True, exist_ok=True)
                set_aside_stale(path)
                save_protocol(saved, path)
            found[spec].append(saved[spec])
    return found
