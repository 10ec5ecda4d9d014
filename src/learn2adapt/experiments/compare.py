"""Compare algorithms on one environment: train every (algorithm, seed), evaluate, report.

Each (algorithm, preset, seed) is an independent :class:`Job` run by a
:class:`~learn2adapt.experiments.runner.Runner`. A job is idempotent: a run
directory that already holds ``DONE`` and an ``eval.json`` covering the
requested schedules is skipped, a run with a checkpoint but no ``DONE`` is
resumed, so a killed comparison is continued by running the same command again.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import shlex
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learn2adapt.adaptation import MODEL_FREE, PAPER_ALGORITHMS
from learn2adapt.errors import UnknownName
from learn2adapt.experiments.runner import Runner, make_runner
from learn2adapt.planning import canonical_name
from learn2adapt.reporting.variants import Entry, label, parse_entries, parse_variants, planner_entry, variant_specs
from learn2adapt.run.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    from_dict,
    load_config,
    preset_config,
    to_dict,
)
from learn2adapt.run.run_dir import atomic_write_text

if TYPE_CHECKING:
    from learn2adapt.evaluation.results import EvalResult
    from learn2adapt.experiments.runs import AnyRun
    from learn2adapt.reporting.records import RunRecord as RecordT

#: Default algorithms of ``learn2adapt compare``: the paper's four.
DEFAULT_ALGOS = PAPER_ALGORITHMS


@dataclass
class Job:
    """One training run plus its evaluation (picklable: sent to worker processes)."""

    config: dict[str, Any]
    run_dir: str
    schedules: list[str]
    eval_episodes: int | None = None
    progress: bool = True
    #: With ``--storage copy``: copy the checkpoint (with the replay data) back too.
    keep_checkpoint: bool = True
    #: Measure the held-out return after every iteration / checkpoint (sample-efficiency curves).
    sample_efficiency: bool = False
    #: The compared entry (``grbal+pe``; :mod:`~learn2adapt.reporting.variants`); default: the algorithm.
    entry: str = ""
    #: Keep an evaluation written by other code (default: evaluate the run again; the old file
    #: is kept as ``eval-<code>.json``).
    reuse_stale: bool = False
    #: Planners every model-based run is also evaluated with (``--eval-planners``), without retraining;
    #: each into ``eval-planner-<name>.json`` (the run's own planner's evaluation is ``eval.json``).
    eval_planners: list[str] = dataclasses.field(default_factory=list)
    #: Environment-step counts at which the run is evaluated while it trains (``--at-steps``), into
    #: ``RUN/steps/<count>/`` (:mod:`~learn2adapt.reporting.budgets`).
    at_steps: list[int] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry or self.config["algo"]


@dataclass
class JobResult:
    algo: str
    seed: int
    run_dir: str
    trained: bool
    evaluated: bool
    seconds: float


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def _protocol_file(out_dir: Path, planner: str | None) -> tuple[Path, list[str]]:
    """The protocol file of a run's evaluation (its own planner's with ``planner`` None) and the
    test-time change that evaluation carries."""
    from learn2adapt.evaluation.results import planner_change, planner_eval_path

    if planner is None:
        return Path(out_dir) / "eval.json", []
    return planner_eval_path(out_dir, planner), planner_change(planner)


def _evaluated(run_dir: Path, schedules: Sequence[str], reuse_stale: bool = False, planner: str | None = None) -> bool:
    """``eval.json`` (or, with ``planner``, the run's evaluation with that planner) covers every
    schedule, evaluated by this code (by any, with ``reuse_stale``)."""
    from learn2adapt.evaluation.results import load_current

    path, change = _protocol_file(run_dir, planner)
    return set(schedules) <= set(load_current(path, reuse_stale, change, *finished_model(run_dir)))


def finished_model(run_dir: Path) -> tuple[int | None, str | None]:
    """``(environment steps, checkpoint digest)`` of a finished run's final model, from its
    ``DONE`` (None where unfinished or not recorded: a ``DONE`` written before the digest was).
    An evaluation recorded for other steps or another checkpoint is not reused."""
    try:
        done = json.loads((Path(run_dir) / "DONE").read_text())
        digest = done.get("checkpoint")
        return int(done["env_steps"]), (str(digest) if digest else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None


def other_planners(config: dict[str, Any], planners: Sequence[str]) -> list[str]:
    """The planners of ``planners`` a run is evaluated with besides its own: none for a model-free run."""
    if config["algo"] in MODEL_FREE:
        return []
    return [p for p in planners if p != canonical_name(config["planner"]["name"])]


#: Options in which a run directory may hold a shorter run than the job asks for: the comparison
#: then extends it (``train --resume --set iterations=N``), keeping everything it trained.
EXTENSIBLE = ("iterations", "baseline.steps")


def check_run_dir(job: Job) -> dict[str, str]:
    """Refuse to reuse a run directory that holds a run of another configuration; return the
    changes that extend a shorter run of the same configuration (``{}``: none needed).

    The device is no part of it: a comparison continued on another machine (a GPU one's on a
    laptop) continues its runs there (:func:`run_job`). A run that differs only by fewer
    ``iterations`` or ``baseline.steps`` (:data:`EXTENSIBLE`) is extended, not refused.

    Raises:
        ConfigError: naming the first differing options.
    """
    path = Path(job.run_dir) / "config.json"
    if not path.exists():
        return {}
    saved = to_dict(load_config(path, device=job.config["device"]))
    diff = _differences(saved, job.config)
    longer = {}
    for key in EXTENSIBLE:
        section, _, name = key.rpartition(".")
        old, new = (c[section][name] if section else c[name] for c in (saved, job.config))
        if new > old:
            longer[key] = str(new)
    if [d for d in diff if d.split(":")[0] not in longer]:
        raise ConfigError(
            f"{job.run_dir} holds a run with another configuration ({'; '.join(diff[:3])}); "
            "use another --out or delete that run directory"
        )
    return longer


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


def run_job(job: Job) -> JobResult:
    """Train (or resume, or skip) one run, then evaluate it under every schedule.

    Raises:
        ConfigError: the run directory holds a run with a different configuration.
    """
    from learn2adapt.experiments.runs import heldout_probe
    from learn2adapt.experiments.runs import load_any as load_run
    from learn2adapt.experiments.runs import train_any as train
    from learn2adapt.run.checkpoint import CHECKPOINT_NAME

    t0 = time.time()
    cfg = from_dict(job.config)
    run_dir = Path(job.run_dir)
    tag = f"[{job.name} seed {cfg.seed}]"
    extension = check_run_dir(job)
    trained = False
    if extension or not (run_dir / "DONE").exists():
        resume = (run_dir / CHECKPOINT_NAME).exists()
        if extension:  # train sets the shorter run's evaluations aside
            extended = ", ".join(f"{k}={v}" for k, v in extension.items())
            print(f"{tag} extending the run in {run_dir} to {extended}", flush=True)
        else:
            print(f"{tag} {'resuming' if resume else 'training'} in {run_dir}", flush=True)
        probes = []
        if job.sample_efficiency:
            probes.append(heldout_probe(seed=cfg.seed, planners=other_planners(job.config, job.eval_planners)))
        if job.at_steps:
            probes.append(budget_probe(job, tag))
        probe = (lambda run: {k: v for p in probes for k, v in p(run).items()}) if probes else None
        moved = {"device": cfg.device} if resume else None  # resumed where the comparison runs now
        changes = {**(moved or {}), **extension} if resume else None
        train(cfg, run_dir, resume=resume, progress=job.progress, changes=changes, probe=probe)
        trained = True
    evaluated = evaluate_into(run_dir, lambda: load_run(run_dir), job, tag)
    print(f"{tag} done ({time.time() - t0:.0f}s)", flush=True)
    return JobResult(job.name, cfg.seed, str(run_dir), trained, evaluated, time.time() - t0)


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


def evaluate_into(out_dir: Path, load: Callable[[], AnyRun], job: Job, tag: str) -> bool:
    """Evaluate a trained run under every schedule of ``job``: with its own planner into
    ``out_dir/eval.json``, with each other planner of ``job.eval_planners`` into
    ``eval-planner-<name>.json`` (the same evaluation seed, hence the same initial states).

    What this code already wrote there is kept and not evaluated again; a file holding results of
    other code or settings is set aside first (:func:`~learn2adapt.evaluation.protocol.set_aside_stale`).

    Args:
        out_dir: where the files go (the run directory, or a directory of one of its step counts).
        load: returns the run; called only when something is evaluated.

    Returns:
        Whether anything was evaluated.
    """
    from learn2adapt.evaluation.protocol import evaluate
    from learn2adapt.evaluation.results import load_current, save_protocol, set_aside_stale
    from learn2adapt.run.loop import RunState, with_online_rule

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


class _IterationPrinter(threading.Thread):
    """Prints one line per finished training iteration of a run (read from its ``metrics.csv``).

    Used in worker processes, whose progress bars would interleave on one terminal.
    """

    def __init__(self, run_dir: Path, tag: str, config: dict, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.path, self.tag, self.every = run_dir / "metrics.csv", tag, every
        # Model-free runs log a row per checkpoint; their budget is in environment steps.
        self.model_free = config["algo"] in MODEL_FREE
        self.total = config["baseline"]["steps"] if self.model_free else config["iterations"]
        self.stop = threading.Event()
        self.seen: set[int] = set()

    def poll(self) -> None:
        from learn2adapt.run.metrics_log import MetricsLog

        try:
            rows = MetricsLog.read(self.path) if self.path.exists() else []
        except (OSError, ValueError):  # being replaced right now: next time
            return
        for row in rows:
            it = row.get("iteration")
            if isinstance(it, int) and it not in self.seen:
                self.seen.add(it)
                progress = (
                    f"checkpoint {it}: {row.get('env_steps')}/{self.total} env steps"
                    if self.model_free
                    else f"iteration {it}/{self.total}: {row.get('env_steps')} env steps"
                )
                print(
                    f"{self.tag} {progress}, "
                    f"training return {float(row.get('return_mean', float('nan'))):.1f}, "
                    f"{float(row.get('wall_seconds', 0)):.0f}s",
                    flush=True,
                )

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.poll()


def _run_job_quiet(job: Job) -> JobResult:
    """:func:`run_job` in a worker process: a line per iteration instead of progress bars."""
    cfg = job.config
    printer = _IterationPrinter(Path(job.run_dir), f"[{cfg['algo']} seed {cfg['seed']}]", cfg)
    printer.start()
    try:
        return run_job(dataclasses.replace(job, progress=False))
    finally:
        printer.stop.set()
        printer.join()
        printer.poll()


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


def default_schedules(cfg: RunConfig) -> list[str]:
    """``fixed`` held-out tasks, plus the preset's mid-episode schedule if it has one."""
    out = ["fixed"]
    if cfg.eval.schedule and cfg.eval.schedule != "fixed":
        out.append(cfg.eval.schedule)
    return out


def resolve_configs(
    env: str, preset: str, entries: Sequence[Entry], seeds: Sequence[int], overrides: Sequence[str]
) -> list[RunConfig]:
    """One validated config per (entry, seed), entry-major, so bad options fail before anything runs.

    An entry's variant options apply after ``overrides`` (the comparison's ``--set``).
    """
    configs = []
    for entry in entries:
        for seed in seeds:
            cfg = preset_config(env, preset, entry.algo)
            apply_overrides(cfg, [*overrides, *entry.overrides])
            cfg.algo, cfg.seed = entry.algo, seed
            configs.append(cfg.validate())
    return configs


#: ``--storage`` choices: jobs write under the output path (a file system every worker
#: shares), or in a local temporary directory copied back to it when the job ends.
STORAGES = ("shared", "copy")


def _run_job_copied(job: Job) -> tuple[JobResult, bytes]:
    """:func:`run_job` in a local temporary directory; returns the run directory as a tar.gz.

    The checkpoint (with the replay data) is copied only with ``job.keep_checkpoint``: a
    reused run needs only ``DONE`` and ``eval.json``, but without it a run cannot be resumed.
    """
    keep = job.keep_checkpoint
    with tempfile.TemporaryDirectory(prefix="l2a-job-") as tmp:
        local = Path(tmp) / "run"
        result = _run_job_quiet(dataclasses.replace(job, run_dir=str(local)))

        def keep_file(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            name = Path(info.name).name
            return None if name == ".lock" or (name == "checkpoint.pt" and not keep) else info

        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w:gz") as tar:
            tar.add(local, arcname=".", filter=keep_file)
    return dataclasses.replace(result, run_dir=job.run_dir), data.getvalue()


def run_jobs(jobs: list[Job], runner: Runner, progress: bool, storage: str = "shared") -> list[JobResult]:
    """Run the jobs that are not complete yet on ``runner``; results in job order (reused ones included)."""
    if storage not in STORAGES:
        raise UnknownName(f"unknown storage {storage!r}; available: {', '.join(STORAGES)}")
    for job in jobs:  # fail fast, before any worker starts
        check_run_dir(job)
    todo = [job for job in jobs if not is_complete(job)]
    if storage == "copy":
        copied = runner.map(_run_job_copied, todo, desc="runs", progress=progress) if todo else []
        finished = []
        for result, archive in copied:
            Path(result.run_dir).mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                tar.extractall(result.run_dir, filter="data")
            finished.append(result)
    else:
        fn = run_job if runner.workers <= 1 else _run_job_quiet
        finished = runner.map(fn, todo, desc="runs", progress=progress) if todo else []
    done = dict(zip([j.run_dir for j in todo], finished))
    return [done.get(j.run_dir) or JobResult(j.name, j.config["seed"], j.run_dir, False, False, 0.0) for j in jobs]


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
            on its worker and its run directory is copied back; see :data:`STORAGES`).
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

    from learn2adapt.envs import short_name
    from learn2adapt.run.config import check_schedule
    from learn2adapt.run.run_dir import RunLock, check_writable

    t0 = time.time()
    entries = parse_entries(algos, parse_variants(variants))
    configs = resolve_configs(env, preset, entries, seeds, overrides)
    names = [e.name for e in entries for _ in seeds]  # the order of ``configs``
    out = Path(out) if out is not None else Path("runs") / f"compare-{short_name(env)}-{preset}"
    planners = check_eval_planners(eval_planners, configs)
    if any(k < 1 for k in at_steps) or len(set(at_steps)) < len(at_steps):
        raise ConfigError(f"--at-steps takes distinct step counts >= 1, got {','.join(map(str, at_steps))}")
    at_steps = sorted(at_steps)
    command = compare_command(
        env, preset, algos, seeds, out, overrides, schedules, eval_episodes, sample_efficiency, oracle,
        variant_specs(entries), planners, at_steps,
    )  # fmt: skip
    schedules = list(schedules) if schedules else default_schedules(configs[0])
    for spec in schedules:  # before hours of training, not after them
        check_schedule(spec)
    if oracle:
        from learn2adapt.evaluation.oracle import check_oracle

        if all(c.algo in MODEL_FREE for c in configs):
            raise ConfigError("--oracle uses the planner of a model-based algorithm; none is compared")
        check_oracle(env)
    with RunLock(out, what="comparison"):
        check_writable(out)
        return _compare_locked(
            env,
            preset,
            algos,
            seeds,
            out,
            runner,
            overrides,
            schedules,
            eval_episodes,
            progress,
            title,
            configs,
            names,
            t0,
            storage,
            keep_checkpoints,
            sample_efficiency,
            oracle,
            command,
            reuse_stale,
            planners,
            at_steps,
        )


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


def _compare_locked(
    env: str,
    preset: str,
    algos: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    runner: Runner | None,
    overrides: Sequence[str],
    schedules: list[str],
    eval_episodes: int | None,
    progress: bool,
    title: str | None,
    configs: list[RunConfig],
    names: list[str],
    t0: float,
    storage: str,
    keep: bool,
    sample_efficiency: bool = False,
    oracle: bool = False,
    command: str = "",
    reuse_stale: bool = False,
    planners: Sequence[str] = (),
    at_steps: Sequence[int] = (),
) -> Path:
    """:func:`compare` once its output directory is locked."""
    from learn2adapt.reporting.budgets import budget_lines, write_budgets_json
    from learn2adapt.reporting.report import write_report

    jobs = [
        Job(
            to_dict(cfg),
            str(out / "runs" / f"{name}-s{cfg.seed}"),
            schedules,
            eval_episodes,
            progress,
            keep,
            sample_efficiency,
            name,
            reuse_stale,
            list(planners),
            list(at_steps),
        )
        for name, cfg in zip(names, configs)
    ]
    runner = runner or make_runner(1)
    if progress:
        print(
            f"compare: {len(jobs)} runs ({', '.join(algos)} x seeds {list(seeds)}) on {env}, preset {preset}, "
            f"{runner.workers} worker(s); output in {out}",
            flush=True,
        )
    results = run_jobs(jobs, runner, progress, storage)
    records = [rec for r, job in zip(results, jobs) for rec in planner_records(Path(r.run_dir), r.algo, job)]
    reported = list(dict.fromkeys(rec.algo for rec in records))
    oracle_results, planner_oracles = {}, {}
    if oracle and planners:
        planner_oracles = {
            p: evaluate_oracle(configs, seeds, schedules, eval_episodes, out / "oracle", progress, reuse_stale, p)
            for p in planners
        }
    elif oracle:
        oracle_results = evaluate_oracle(
            configs, seeds, schedules, eval_episodes, out / "oracle", progress, reuse_stale
        )
    cfg0 = configs[0]
    notes = [
        f"Command: `{command}` (runs already complete in `--out` are reused; `--workers N` runs them in parallel).",
        f"Environment `{env}`, preset `{preset}`" + (f", overrides `{' '.join(overrides)}`" if overrides else "") + ".",
        f"Training seeds {list(seeds)}; {eval_episodes or cfg0.eval.episodes_per_task} evaluation episodes per held-out "
        f"task and seed, episode length {cfg0.eval.episode_length or cfg0.episode_length}; evaluation seed = training seed.",
        f"Prediction error: M = {cfg0.adaptation.past} past, K = {cfg0.adaptation.future} future transitions, "
        "on segments of the evaluation episodes.",
        f"Wall-clock of this invocation: {time.time() - t0:.0f} s with {runner.workers} worker(s) "
        f"({sum(r.trained for r in results)} runs trained, {sum(r.evaluated for r in results)} evaluated, the rest reused; "
        "each run's own training and evaluation wall-clock is in the tables).",
    ]
    sections: list[str] = []
    if at_steps:
        by_steps = {
            k: [rec for r, job in zip(results, jobs) for rec in planner_records(Path(r.run_dir), r.algo, job, k)]
            for k in at_steps
        }
        oracles = dict(planner_oracles) or ({"": oracle_results} if oracle_results else {})
        (out / "report").mkdir(parents=True, exist_ok=True)
        sections, data = budget_lines(by_steps, reported, schedules, oracles, out / "report")
        write_budgets_json(data, out / "report" / "budgets.json")
    report = write_report(
        records,
        out / "report",
        title or f"{', '.join(map(label, algos))} on {env} ({preset})",
        reported,
        schedules,
        notes,
        oracle_results,
        planners,
        planner_oracles,
        sections,
    )
    atomic_write_text(
        out / "compare.json",
        json.dumps(
            {
                "env": env,
                "preset": preset,
                "algos": list(algos),
                "seeds": list(seeds),
                "overrides": list(overrides),
                "schedules": schedules,
                "eval_planners": list(planners),
                "at_steps": list(at_steps),
                "runs": [r.__dict__ for r in results],
            },
            indent=2,
        )
        + "\n",
    )
    if progress:
        print(f"report: {report}", flush=True)
    return report
