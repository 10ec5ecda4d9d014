"""A trained run's evaluations, with its own planner and with every planner of ``--eval-planners``.

``compare --eval-planners rs,cem`` makes the planner an evaluation axis: every model-based run
is evaluated, without retraining, with its own planner into ``eval.json`` and with each other
planner into ``eval-planner-<name>.json``
(:func:`~learn2adapt.evaluation.results.planner_eval_path`), all with the same evaluation seed,
hence the same initial states; the report tables them as entries ``ENTRY@PLANNER``
(:func:`planner_records`). :func:`evaluate_into` writes a run's evaluations (also at a budget of
``--at-steps``, :mod:`~learn2adapt.experiments.budget_evals`), reusing what this code already
wrote for the same model, and :func:`is_complete` says whether a job has nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learn2adapt.adaptation import MODEL_FREE
from learn2adapt.experiments.jobs import Job, check_run_dir, finished_model
from learn2adapt.planning import canonical_name
from learn2adapt.reporting.variants import planner_entry
from learn2adapt.run.config import ConfigError, RunConfig

if TYPE_CHECKING:
    from learn2adapt.experiments.runs import AnyRun
    from learn2adapt.reporting.records import RunRecord as RecordT


def other_planners(config: dict[str, Any], planners: Sequence[str]) -> list[str]:
    """The planners of ``planners`` a run is evaluated with besides its own: none for a model-free run."""
    if config["algo"] in MODEL_FREE:
        return []
    return [p for p in planners if p != canonical_name(config["planner"]["name"])]


def check_eval_planners(names: Sequence[str], configs: Sequence[RunConfig]) -> list[str]:
    """The registered names of ``--eval-planners``, checked before anything runs.

    Raises:
        UnknownName: an unknown planner.
        ConfigError: a planner named twice, or no model-based run to plan with (the option would
            have no effect).
    """
    planners = [canonical_name(n) for n in names]
    if len(set(planners)) < len(planners):
        raise ConfigError(f"--eval-planners names a planner twice: {','.join(names)}")
    if planners and all(c.algo in MODEL_FREE for c in configs):
        raise ConfigError("--eval-planners plans the model-based runs; every compared algorithm is model-free")
    return planners


def _protocol_file(out_dir: Path, planner: str | None) -> tuple[Path, list[str]]:
    """The protocol file of a run's evaluation (its own planner's with ``planner`` None) and the
    test-time change that evaluation carries."""
    from learn2adapt.evaluation.results import eval_path, planner_change, planner_eval_path

    if planner is None:
        return eval_path(out_dir), []
    return planner_eval_path(out_dir, planner), planner_change(planner)


def _evaluated(run_dir: Path, schedules: Sequence[str], reuse_stale: bool = False, planner: str | None = None) -> bool:
    """``eval.json`` (or, with ``planner``, the run's evaluation with that planner) covers every
    schedule, evaluated by this code (by any, with ``reuse_stale``)."""
    from learn2adapt.evaluation.results import load_current

    path, change = _protocol_file(run_dir, planner)
    return set(schedules) <= set(load_current(path, reuse_stale, change, *finished_model(run_dir)))


def is_complete(job: Job) -> bool:
    """The job's run finished (``DONE``) and was evaluated under every requested schedule, with
    every requested planner."""
    run_dir = Path(job.run_dir)
    return (
        not check_run_dir(job)
        and (run_dir / "DONE").exists()
        and _evaluated(run_dir, job.schedules, job.reuse_stale)
        and all(
            _evaluated(run_dir, job.schedules, job.reuse_stale, p)
            for p in other_planners(job.config, job.eval_planners)
        )
    )


def evaluate_into(out_dir: Path, load: Callable[[], AnyRun], job: Job, tag: str) -> bool:
    """Evaluate a trained run under every schedule of ``job``: with its own planner into
    ``out_dir/eval.json``, with each other planner of ``job.eval_planners`` into
    ``eval-planner-<name>.json`` (the same evaluation seed, hence the same initial states).

    What this code already wrote there is kept and not evaluated again; a file holding results of
    other code or settings is set aside first (:func:`~learn2adapt.evaluation.results.set_aside_stale`).

    Args:
        out_dir: where the files go (the run directory, or a directory of one of its step counts).
        load: returns the run; called only when something is evaluated.

    Returns:
        Whether anything was evaluated.
    """
    from learn2adapt.evaluation.protocol import evaluate
    from learn2adapt.evaluation.results import load_current, save_protocol, set_aside_stale
    from learn2adapt.run.state import RunState, with_online_rule

    evaluated, run = False, None
    for planner in [None, *other_planners(job.config, job.eval_planners)]:
        path, change = _protocol_file(out_dir, planner)
        steps, digest = finished_model(out_dir)
        saved = load_current(path, job.reuse_stale, change, steps, digest)
        missing = [spec for spec in job.schedules if spec not in saved]
        if not missing:
            continue
        run = run or load()
        planned = run
        if planner:
            assert isinstance(run, RunState)  # other_planners: model-based runs only
            planned = with_online_rule(run, run.cfg.algo, change)
        with_what = f" with planner {planner}" if planner else ""
        for spec in missing:
            print(f"{tag} evaluating{with_what} on held-out tasks, schedule {spec}", flush=True)
            result = evaluate(planned, job.eval_episodes, seed=run.cfg.seed, progress=job.progress, schedule=spec)
            result.test_time = change
            saved[spec] = result
            r = result.to_json()
            print(
                f"{tag}{with_what} schedule {spec}: held-out return {r['mean']:.1f} ± {r['ci95']:.1f}, prediction "
                f"error {r['pred_error_before']:.3g} before / {r['pred_error_after']:.3g} after adaptation",
                flush=True,
            )
        kept = set_aside_stale(path, change, steps, digest)
        if kept:
            print(f"{tag} its earlier evaluation (other code or settings) is kept as {kept.name}", flush=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_protocol({spec: saved[spec] for spec in job.schedules}, path)
        evaluated = True
    return evaluated


def planner_records(run_dir: Path, name: str, job: Job, steps: int | None = None) -> list[RecordT]:
    """The report records of one run: one per evaluation planner of ``job`` (``ENTRY@PLANNER``), or
    the run as it is without ``--eval-planners`` (and for a model-free run); with ``steps``, of its
    evaluation at that budget (none if it was not evaluated there)."""
    from learn2adapt.experiments.runs import probe_key
    from learn2adapt.reporting.budgets import steps_dir
    from learn2adapt.reporting.records import RunRecord

    where = run_dir if steps is None else steps_dir(run_dir, steps)
    if steps is not None and not (where / "eval.json").exists():
        return []
    if not job.eval_planners or job.config["algo"] in MODEL_FREE:
        return [RunRecord.load(run_dir, name=name, eval_file=str((where / "eval.json").relative_to(run_dir)))]
    others = other_planners(job.config, job.eval_planners)
    records = []
    for p in job.eval_planners:
        path, _ = _protocol_file(where, p if p in others else None)
        key = probe_key(p if p in others else None)
        records.append(RunRecord.load(run_dir, planner_entry(name, p), str(path.relative_to(run_dir)), key))
    return records
