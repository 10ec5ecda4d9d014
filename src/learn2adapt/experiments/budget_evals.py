"""The ``--at-steps`` budgets of a comparison: every run evaluated while it trains.

``compare --at-steps 12000,24000`` evaluates each run at the first iteration or checkpoint
whose environment steps reach each count (:func:`budget_probe`, a training probe), with the
full protocol, into ``RUN/steps/<count>/``; the report's budget section is drawn from those
evaluations (:func:`budget_section`; the tables and figure: :mod:`learn2adapt.reporting.budgets`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from learn2adapt.experiments.jobs import Job, JobResult
from learn2adapt.experiments.planner_evals import evaluate_into, planner_records
from learn2adapt.run.config import ConfigError

if TYPE_CHECKING:
    from learn2adapt.evaluation.results import EvalResult
    from learn2adapt.experiments.runs import AnyRun


def check_at_steps(at_steps: Sequence[int]) -> list[int]:
    """The step counts of ``--at-steps``, smallest first, checked before anything runs.

    Raises:
        ConfigError: a count below 1, or one named twice.
    """
    if any(k < 1 for k in at_steps) or len(set(at_steps)) < len(at_steps):
        raise ConfigError(f"--at-steps takes distinct step counts >= 1, got {','.join(map(str, at_steps))}")
    return sorted(at_steps)


def budget_probe(job: Job, tag: str) -> Callable[[AnyRun], dict[str, float]]:
    """A training probe that evaluates the run (:func:`evaluate_into`) at the first iteration or
    checkpoint whose environment steps reach each of ``job.at_steps``, into ``RUN/steps/<count>/``.

    Only at that crossing: a count passed before (a run trained without ``--at-steps``) stays
    unevaluated rather than be evaluated at another budget. A crossing redone after a kill
    (the same model: resumes are exact) keeps what was already written for it.
    """
    from learn2adapt.reporting.budgets import steps_dir
    from learn2adapt.run.metrics_log import MetricsLog

    run_dir = Path(job.run_dir)
    metrics = run_dir / "metrics.csv"
    rows = MetricsLog.read(metrics) if metrics.exists() else []
    before = int(rows[-1]["env_steps"]) if rows else 0  # the checkpoint's, read once at the start

    def probe(run: AnyRun) -> dict[str, float]:
        nonlocal before
        now = run.train_env_steps
        for count in job.at_steps:
            if before < count <= now:
                print(f"{tag} {now} environment steps: evaluating at the {count}-step budget", flush=True)
                evaluate_into(steps_dir(run_dir, count), lambda: run, job, tag)
        before = now
        return {}

    return probe


def budget_section(
    results: Sequence[JobResult],
    jobs: Sequence[Job],
    at_steps: Sequence[int],
    reported: Sequence[str],
    schedules: Sequence[str],
    oracles: dict[str, dict[str, list[EvalResult]]],
    report_dir: Path,
) -> list[str]:
    """The report's budget section (Markdown lines), from every run's evaluations at each of
    ``at_steps``; writes ``budgets.json`` and draws the budget figure into ``report_dir``.

    ``oracles``: per planner (``""``: the runs' own), per schedule, the oracle's evaluations.
    """
    from learn2adapt.reporting.budgets import budget_lines, write_budgets_json

    by_steps = {
        k: [rec for r, job in zip(results, jobs) for rec in planner_records(Path(r.run_dir), r.algo, job, k)]
        for k in at_steps
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    sections, data = budget_lines(by_steps, reported, schedules, oracles, report_dir)
    write_budgets_json(data, report_dir / "budgets.json")
    return sections
