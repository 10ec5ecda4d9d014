"""Compare algorithms on one environment: train every (algorithm, seed), evaluate, report.

Each (algorithm, preset, seed) is an independent :class:`~learn2adapt.experiments.jobs.Job`
run by a :class:`~learn2adapt.experiments.runner.Runner`
(:mod:`~learn2adapt.experiments.execution`). A job is idempotent: a run directory that already
holds ``DONE`` and an ``eval.json`` covering the requested schedules is skipped, a run with a
checkpoint but no ``DONE`` is resumed, so a killed comparison is continued by running the same
command again. Besides the runs: their evaluation with other planners
(:mod:`~learn2adapt.experiments.planner_evals`), at training budgets
(:mod:`~learn2adapt.experiments.budget_evals`), and the oracle
(:mod:`~learn2adapt.experiments.oracle_evals`).
"""

from __future__ import annotations

import functools
import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from learn2adapt.adaptation import PAPER_ALGORITHMS
from learn2adapt.experiments.budget_evals import budget_section, check_at_steps
from learn2adapt.experiments.execution import run_jobs
from learn2adapt.experiments.jobs import Job, JobResult, resolve_configs
from learn2adapt.experiments.oracle_evals import check_oracle_comparison, evaluate_oracle
from learn2adapt.experiments.planner_evals import check_eval_planners, planner_records
from learn2adapt.experiments.runner import Runner, make_runner
from learn2adapt.moved import moved_names
from learn2adapt.reporting.variants import label, parse_entries, parse_variants, variant_specs
from learn2adapt.run.config import RunConfig, check_schedule
from learn2adapt.run.options import to_dict
from learn2adapt.run.run_dir import atomic_write_text

if TYPE_CHECKING:
    from learn2adapt.evaluation.results import EvalResult

#: Names that moved out of this module (issue 41): importable from here, with a
#: DeprecationWarning, until 0.3.
if not TYPE_CHECKING:  # mypy sees no __getattr__, so it still flags a name imported from the wrong module
    __getattr__ = moved_names(
        __name__,
        {
            **dict.fromkeys(("EXTENSIBLE", "check_run_dir", "finished_model"), "learn2adapt.experiments.jobs"),
            **dict.fromkeys(("STORAGES", "run_job"), "learn2adapt.experiments.execution"),
            **dict.fromkeys(
                ("other_planners", "is_complete", "evaluate_into"), "learn2adapt.experiments.planner_evals"
            ),
            "budget_probe": "learn2adapt.experiments.budget_evals",
        },
    )

#: Default algorithms of ``learn2adapt compare``: the paper's four.
DEFAULT_ALGOS = PAPER_ALGORITHMS


@dataclass
class _Comparison:
    """The options of one :func:`compare`, checked before anything runs (:func:`_checked`)."""

    env: str
    preset: str
    algos: Sequence[str]
    seeds: Sequence[int]
    out: Path
    overrides: Sequence[str]
    schedules: list[str]
    eval_episodes: int | None
    progress: bool
    title: str | None
    storage: str
    keep_checkpoints: bool
    sample_efficiency: bool
    oracle: bool
    reuse_stale: bool
    #: One validated config per (entry, seed), entry-major, and the entry each belongs to.
    configs: list[RunConfig]
    names: list[str]
    #: The registered names of ``--eval-planners``, and the ``--at-steps`` counts, sorted.
    planners: list[str]
    at_steps: list[int]
    #: The command line that regenerates the comparison (:func:`compare_command`).
    command: str
    t0: float


def compare(
    env: str,
    preset: str = "quick",
    algos: Sequence[str] = DEFAULT_ALGOS,
    seeds: Sequence[int] = (0, 1, 2),
    out: Path | None = None,
    runner: Runner | None = None,
    overrides: Sequence[str] = (),
    schedules: Sequence[str] | None = None,
    eval_episodes: int | None = None,
    progress: bool = True,
    title: str | None = None,
    storage: str = "shared",
    keep_checkpoints: bool = True,
    sample_efficiency: bool = False,
    oracle: bool = False,
    variants: Sequence[str] = (),
    reuse_stale: bool = False,
    eval_planners: Sequence[str] = (),
    at_steps: Sequence[int] = (),
) -> Path:
    """Train and evaluate every (algorithm, seed), then write the report.

    Args:
        env: environment id.
        preset: preset table of the environment family (``quick``, ``paper``, ...).
        algos: entries to compare: algorithms, or ``ALGO+VARIANT`` (:mod:`~learn2adapt.reporting.variants`).
        seeds: training seeds (each run's evaluation uses the same seed, so every
            algorithm meets the same initial states).
        out: output directory (``runs/`` and ``report/`` go there).
        runner: job backend (default: sequential, in this process).
        overrides: ``key=value`` options applied to every run.
        schedules: evaluation schedules (default: :func:`default_schedules`).
        eval_episodes: episodes per test task (default: the config's).
        progress: progress bars (in this process) / per-iteration lines.
        title: report title.
        storage: ``shared`` (jobs write under ``out``) or ``copy`` (each job writes locally
            on its worker and its run directory is copied back; see
            :data:`~learn2adapt.experiments.execution.STORAGES`).
        keep_checkpoints: with ``copy``, copy the checkpoints (with the replay data) back too.
        sample_efficiency: evaluate every run on the held-out tasks (``fixed``, one episode per
            task) after each iteration or checkpoint, for the report's sample-efficiency figure.
        oracle: also evaluate, per seed and schedule, MPC with the simulator as its model
            (:mod:`learn2adapt.evaluation.oracle`; the planner of the first model-based algorithm).
        variants: ``NAME:KEY=VALUE`` specs defining or changing the variants ``algos`` use.
        reuse_stale: reuse evaluations written by other code too (default: evaluate those runs
            and oracle seeds again, keeping the old files as ``*-<code>.json``; the report names
            the code of every evaluation it shows).
        eval_planners: also evaluate every model-based run (and the oracle) planned with each of
            these planners, without retraining: the report tables them side by side, as entries
            ``ENTRY@PLANNER``; training, and the sample-efficiency probe of each run's own
            planner, keep the preset's planner (the probe also measures these).
        at_steps: environment-step counts at which every run is evaluated while it trains (the
            first checkpoint at or past each; :mod:`~learn2adapt.reporting.budgets`), for the
            report's held-out return by budget.

    Returns:
        The path of ``report.md``.
    """
    from learn2adapt.run.run_dir import RunLock, check_writable

    c = _checked(
        env, preset, algos, seeds, out, overrides, schedules, eval_episodes, progress, title, storage,
        keep_checkpoints, sample_efficiency, oracle, variants, reuse_stale, eval_planners, at_steps,
    )  # fmt: skip
    with RunLock(c.out, what="comparison"):
        check_writable(c.out)
        return _compare_locked(c, runner)


def _checked(
    env: str,
    preset: str,
    algos: Sequence[str],
    seeds: Sequence[int],
    out: Path | None,
    overrides: Sequence[str],
    schedules: Sequence[str] | None,
    eval_episodes: int | None,
    progress: bool,
    title: str | None,
    storage: str,
    keep_checkpoints: bool,
    sample_efficiency: bool,
    oracle: bool,
    variants: Sequence[str],
    reuse_stale: bool,
    eval_planners: Sequence[str],
    at_steps: Sequence[int],
) -> _Comparison:
    """:func:`compare`'s options resolved and checked, so bad ones fail before hours of training."""
    from learn2adapt.envs import short_name

    t0 = time.time()
    entries = parse_entries(algos, parse_variants(variants))
    configs = resolve_configs(env, preset, entries, seeds, overrides)
    names = [e.name for e in entries for _ in seeds]  # the order of ``configs``
    out = Path(out) if out is not None else Path("runs") / f"compare-{short_name(env)}-{preset}"
    planners = check_eval_planners(eval_planners, configs)
    steps = check_at_steps(at_steps)
    command = compare_command(
        env, preset, algos, seeds, out, overrides, schedules, eval_episodes, sample_efficiency, oracle,
        variant_specs(entries), planners, steps,
    )  # fmt: skip
    schedules = list(schedules) if schedules else default_schedules(configs[0])
    for spec in schedules:  # before hours of training, not after them
        check_schedule(spec)
    if oracle:
        check_oracle_comparison(env, configs)
    return _Comparison(
        env, preset, algos, seeds, out, overrides, schedules, eval_episodes, progress, title, storage,
        keep_checkpoints, sample_efficiency, oracle, reuse_stale, configs, names, planners, steps, command, t0,
    )  # fmt: skip


def default_schedules(cfg: RunConfig) -> list[str]:
    """``fixed`` held-out tasks, plus the preset's mid-episode schedule if it has one."""
    out = ["fixed"]
    if cfg.eval.schedule and cfg.eval.schedule != "fixed":
        out.append(cfg.eval.schedule)
    return out


def compare_command(
    env: str,
    preset: str,
    algos: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    overrides: Sequence[str],
    schedules: Sequence[str] | None,
    eval_episodes: int | None,
    sample_efficiency: bool,
    oracle: bool,
    variants: Sequence[str] = (),
    eval_planners: Sequence[str] = (),
    at_steps: Sequence[int] = (),
) -> str:
    """The ``learn2adapt compare`` command line that regenerates a comparison (without runner options)."""
    seed_arg = str(len(seeds)) if list(seeds) == list(range(len(seeds))) else ",".join(map(str, seeds))
    parts = [
        "learn2adapt compare",
        f"--env {env}",
        f"--preset {preset}",
        f"--algos {','.join(algos)}",
        f"--seeds {seed_arg}",
    ]
    parts += [f"--variant {shlex.quote(v)}" for v in variants]
    parts += [f"--set {shlex.quote(o)}" for o in overrides] + [f"--schedule {shlex.quote(s)}" for s in schedules or ()]
    parts += [f"--episodes {eval_episodes}"] if eval_episodes else []
    parts += (["--sample-efficiency"] if sample_efficiency else []) + (["--oracle"] if oracle else [])
    parts += [f"--eval-planners {','.join(eval_planners)}"] if eval_planners else []
    parts += [f"--at-steps {','.join(map(str, at_steps))}"] if at_steps else []
    return " ".join([*parts, f"--out {shlex.quote(str(out))}"])


def _compare_locked(c: _Comparison, runner: Runner | None) -> Path:
    """:func:`compare` once its output directory is locked."""
    from learn2adapt.reporting.report import write_report

    jobs = _jobs(c)
    runner = runner or make_runner(1)
    if c.progress:
        print(
            f"compare: {len(jobs)} runs ({', '.join(c.algos)} x seeds {list(c.seeds)}) on {c.env}, preset {c.preset}, "
            f"{runner.workers} worker(s); output in {c.out}",
            flush=True,
        )
    results = run_jobs(jobs, runner, c.progress, c.storage)
    records = [rec for r, job in zip(results, jobs) for rec in planner_records(Path(r.run_dir), r.algo, job)]
    reported = list(dict.fromkeys(rec.algo for rec in records))
    oracle_results, planner_oracles = _oracles(c)
    notes = _notes(c, runner, results)
    sections: list[str] = []
    if c.at_steps:
        oracles = dict(planner_oracles) or ({"": oracle_results} if oracle_results else {})
        sections = budget_section(results, jobs, c.at_steps, reported, c.schedules, oracles, c.out / "report")
    report = write_report(
        records,
        c.out / "report",
        c.title or f"{', '.join(map(label, c.algos))} on {c.env} ({c.preset})",
        reported,
        c.schedules,
        notes,
        oracle_results,
        c.planners,
        planner_oracles,
        sections,
    )
    _write_compare_json(c, results)
    if c.progress:
        print(f"report: {report}", flush=True)
    return report


def _oracles(c: _Comparison) -> tuple[dict[str, list[EvalResult]], dict[str, dict[str, list[EvalResult]]]]:
    """The oracle's evaluations (none without ``--oracle``): with the runs' planner, per schedule;
    or, with ``--eval-planners``, none of those but, per planner, its own."""
    if not c.oracle:
        return {}, {}
    evaluate = functools.partial(
        evaluate_oracle, c.configs, c.seeds, c.schedules, c.eval_episodes, c.out / "oracle", c.progress, c.reuse_stale
    )
    if c.planners:
        return {}, {p: evaluate(p) for p in c.planners}
    return evaluate(), {}


def _jobs(c: _Comparison) -> list[Job]:
    """One job per (entry, seed), in the order of ``c.configs``."""
    return [
        Job(
            to_dict(cfg),
            str(c.out / "runs" / f"{name}-s{cfg.seed}"),
            c.schedules,
            c.eval_episodes,
            c.progress,
            c.keep_checkpoints,
            c.sample_efficiency,
            name,
            c.reuse_stale,
            list(c.planners),
            list(c.at_steps),
        )
        for name, cfg in zip(c.names, c.configs)
    ]


def _notes(c: _Comparison, runner: Runner, results: Sequence[JobResult]) -> list[str]:
    """The report's protocol lines about the comparison itself."""
    cfg0 = c.configs[0]
    overrides = f", overrides `{' '.join(c.overrides)}`" if c.overrides else ""
    return [
        f"Command: `{c.command}` (runs already complete in `--out` are reused; `--workers N` runs them in parallel).",
        f"Environment `{c.env}`, preset `{c.preset}`" + overrides + ".",
        f"Training seeds {list(c.seeds)}; {c.eval_episodes or cfg0.eval.episodes_per_task} evaluation episodes per "
        f"held-out task and seed, episode length {cfg0.eval.episode_length or cfg0.episode_length}; evaluation seed = "
        "training seed.",
        f"Prediction error: M = {cfg0.adaptation.past} past, K = {cfg0.adaptation.future} future transitions, "
        "on segments of the evaluation episodes.",
        f"Wall-clock of this invocation: {time.time() - c.t0:.0f} s with {runner.workers} worker(s) "
        f"({sum(r.trained for r in results)} runs trained, {sum(r.evaluated for r in results)} evaluated, the rest "
        "reused; each run's own training and evaluation wall-clock is in the tables).",
    ]


def _write_compare_json(c: _Comparison, results: Sequence[JobResult]) -> None:
    """``compare.json``: the comparison's options and every run's outcome."""
    summary = {
        "env": c.env,
        "preset": c.preset,
        "algos": list(c.algos),
        "seeds": list(c.seeds),
        "overrides": list(c.overrides),
        "schedules": c.schedules,
        "eval_planners": list(c.planners),
        "at_steps": list(c.at_steps),
        "runs": [r.__dict__ for r in results],
    }
    atomic_write_text(c.out / "compare.json", json.dumps(summary, indent=2) + "\n")
