"""Where experiment jobs run: a small interface with a sequential and a process-pool backend.

``learn2adapt compare`` turns every (algorithm, preset, seed) into an
independent job (a picklable top-level function plus picklable arguments) and
hands the jobs to a :class:`Runner`. Only this module knows how jobs are
executed, so a distributed backend (Ray, Dask, a SLURM array) is one more
subclass implementing :meth:`Runner.submit`; nothing else changes.
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from learn2adapt.allocator import keep_freed_memory
from learn2adapt.cpus import usable_cpus
from learn2adapt.errors import ConfigError, UnknownName, UserError
from learn2adapt.progress import progress_bar

T = TypeVar("T")


class Runner(ABC):
    """Executes independent jobs and hands back their results.

    Jobs must be picklable: a module-level function and picklable arguments
    (backends may run them in another process or on another machine).
    """

    #: How many jobs may run at once (used to size per-job thread counts).
    workers: int = 1

    @abstractmethod
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; returns a future for its result."""

    def map(self, fn: Callable[..., T], items: Iterable[Any], desc: str = "jobs", progress: bool = True) -> list[T]:
        """``[fn(item) for item in items]``, run by this backend, results in input order.

        The first job that raises makes ``map`` raise that exception once the
        jobs already running have finished (their results are kept on disk by
        the jobs themselves, so nothing finished is lost).
        """
        futures = [self.submit(fn, item) for item in items]
        index = {id(f): i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        error: BaseException | None = None
        with progress_bar(total=len(futures), desc=desc, unit="job", enabled=progress, leave=True) as bar:
            for f in as_completed(futures):
                try:
                    results[index[id(f)]] = f.result()
                except BaseException as e:  # noqa: BLE001 - re-raised below, after the others finish
                    if error is None:
                        error = e
                        for other in futures:  # don't start jobs that have not started yet
                            other.cancel()
                bar.update(1)
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        """Release workers (no-op for backends without any)."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalRunner(Runner):
    """Runs each job immediately, in this process (simplest to debug; one job at a time)."""

    workers = 1

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - delivered through the future, like a pool would
            if isinstance(e, KeyboardInterrupt):
                raise
            future.set_exception(e)
        return future

    def map(self, fn: Callable[..., T], items: Iterable[Any], desc: str = "jobs", progress: bool = True) -> list[T]:
        # Sequential: stop at the first failure instead of running the remaining jobs.
        results = []
        items = list(items)
        with progress_bar(total=len(items), desc=desc, unit="job", enabled=progress, leave=True) as bar:
            for item in items:
                results.append(fn(item))
                bar.update(1)
        return results


def _init_worker(threads: int) -> None:
    """Give each worker its share of the cores, so N workers don't oversubscribe the machine;
    keep freed memory in the worker as the CLI does (``learn2adapt.allocator``)."""
    keep_freed_memory()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class ProcessPoolRunner(Runner):
    """Runs jobs in ``workers`` processes (``spawn``: safe with torch and MuJoCo).

    Args:
        workers: processes; each gets ``usable_cpus() // workers`` torch threads (:mod:`learn2adapt.cpus`).
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.threads = max(1, usable_cpus() // workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads,),
        )

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


#: How the ``ray`` optional dependency is installed (named in the error when it is missing).
RAY_INSTALL = 'pip install "learn2adapt[cluster]"  (or: pip install "ray[default]")'


def _ray_job(threads: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A job inside a Ray worker: its share of threads, then ``fn``."""
    _init_worker(threads)
    return fn(*args, **kwargs)


class JobsFailed(UserError):
    """Some jobs of a Ray run failed after their retries (the others finished)."""


class RayRunner(Runner):
    """Runs each job as a Ray task, on a local Ray instance or an existing cluster.

    Args:
        address: a running cluster's address (``ray start --head`` prints it; ``auto`` joins
            the one on this machine); None starts a local instance sized to this machine.
        cpus_per_job: the task's ``num_cpus``, and the job's torch threads.
        max_retries: attempts after the first when a job raises or its worker dies.

    Unlike the process pool, a failed job does not stop the others: :meth:`map` runs them
    all, then raises :class:`JobsFailed` naming each failure.
    """

    def __init__(self, address: str | None = None, cpus_per_job: int = 1, max_retries: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise UserError(f"--runner ray needs Ray, which is not installed: {RAY_INSTALL}") from None
        if cpus_per_job < 1 or max_retries < 0:
            raise ConfigError("--cpus-per-job must be >= 1 and --max-retries >= 0")
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            if address is None:
                ray.init(num_cpus=usable_cpus(), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, cpus // cpus_per_job)
        self.threads = cpus_per_job
        self._remote = ray.remote(num_cpus=cpus_per_job, max_retries=max_retries, retry_exceptions=True)(_ray_job)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        return self._remote.remote(self.threads, fn, *args, **kwargs).future()

    def map(self, fn: Callable[..., T], items: Iterable[Any], desc: str = "jobs", progress: bool = True) -> list[T]:
        futures = [self.submit(fn, item) for item in items]
        index = {id(f): i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        failures: list[str] = []
        with progress_bar(total=len(futures), desc=desc, unit="job", enabled=progress, leave=True) as bar:
            for f in as_completed(futures):
                try:
                    results[index[id(f)]] = f.result()
                except Exception as e:  # noqa: BLE001 - every failure is reported, the others go on
                    last = (str(e).strip().splitlines() or [type(e).__name__])[-1]
                    failures.append(f"job {index[id(f)]}: {last}")
                bar.update(1)
        if failures:
            raise JobsFailed(
                f"{len(failures)} of {len(futures)} jobs failed after their retries ({'; '.join(failures)})"
            )
        return results

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


#: ``--runner`` choices.
RUNNERS = ("local", "process", "ray")


def make_runner(
    workers: int, kind: str | None = None, address: str | None = None, cpus_per_job: int = 1, max_retries: int = 1
) -> Runner:
    """A runner: ``local`` (in this process), ``process`` (a pool of ``workers``) or ``ray``.

    Without ``kind``: :class:`LocalRunner` for one worker, else a :class:`ProcessPoolRunner`.
    """
    kind = kind or ("local" if workers <= 1 else "process")
    if kind == "local":
        return LocalRunner()
    if kind == "process":
        return ProcessPoolRunner(workers)
    if kind == "ray":
        return RayRunner(address, cpus_per_job, max_retries)
    raise UnknownName(f"unknown runner {kind!r}; available: {', '.join(RUNNERS)}")
