"""Running a comparison's jobs: train (or resume, extend, or skip) each run, then evaluate it.

:func:`run_job` runs one :class:`~learn2adapt.experiments.jobs.Job` where it is called;
:func:`run_jobs` runs those not complete yet on a
:class:`~learn2adapt.experiments.runner.Runner`, in this process or in workers (which print a
line per training iteration instead of progress bars), writing under the output path or, with
``--storage copy``, in a local directory copied back when the job ends. A job is idempotent, so
a killed comparison is continued by running the same command again.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from learn2adapt.adaptation import MODEL_FREE
from learn2adapt.errors import UnknownName
from learn2adapt.experiments.budget_evals import budget_probe
from learn2adapt.experiments.jobs import Job, JobResult, check_run_dir
from learn2adapt.experiments.planner_evals import evaluate_into, is_complete, other_planners
from learn2adapt.experiments.runner import Runner
from learn2adapt.run.options import from_dict


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
