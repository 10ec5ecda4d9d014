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

from tqdm.auto import tqdm

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
        with tqdm(total=len(futures), desc=desc, unit="job", disable=not progress, leave=True) as bar:
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
        with tqdm(total=len(items), desc=desc, unit="job", disable=not progress, leave=True) as bar:
            for item in items:
                results.append(fn(item))
                bar.update(1)
        return results


def _init_worker(threads: int) -> None:
    """Give each worker its share of the cores, so N workers don't oversubscribe the machine."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class ProcessPoolRunner(Runner):
    """Runs jobs in ``workers`` processes (``spawn``: safe with torch and MuJoCo).

    Args:
        workers: processes; each gets ``cpu_count // workers`` torch threads.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        )

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_runner(workers: int) -> Runner:
    """:class:`LocalRunner` for one worker, else a :class:`ProcessPoolRunner`."""
    return LocalRunner() if workers <= 1 else ProcessPoolRunner(workers)
