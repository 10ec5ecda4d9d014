"""What guards a run directory: one writer at a time, writable before long work, atomic writes.

* :class:`RunLock`: an exclusive OS file lock (``fcntl.flock`` on ``<dir>/.lock``) held for the
  life of the process; the kernel releases it when the process dies, so a SIGKILLed run
  never leaves a stale lock. A second writer gets a one-line :class:`RunDirBusy` naming the
  holder's PID.
* :func:`check_writable`: creates and removes a probe file, so a read-only or full
  directory is refused before an iteration is collected and fitted, not after.
* :func:`atomic_write_bytes` / :func:`atomic_write_text`: a uniquely named temporary file
  in the same directory, fsynced, renamed over the target; on any OS error the
  temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from learn2adapt.errors import RunDirBusy, UserError

LOCK_NAME = ".lock"


def os_error_message(e: OSError, what: str) -> str:
    """One line for an OS error while doing ``what`` (no space, read-only, permission...)."""
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
    }.get(e.errno or 0, e.strerror or type(e).__name__)
    return f"cannot {what}: {reason}"


#: The folder inside a run where files a restart or an extension replaces are kept, by date.
DISCARDED = "discarded"


def move_to_discarded(run_dir: Path, paths: Sequence[Path]) -> Path | None:
    """Move ``paths`` (files or folders inside ``run_dir``) into ``run_dir/discarded/<date-time>/``
    rather than delete them; returns that folder, or None when none of them exists."""
    present = [Path(p) for p in paths if Path(p).exists()]
    if not present:
        return None
    stamp = Path(run_dir) / DISCARDED / time.strftime("%Y%m%d-%H%M%S")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    folder, n = stamp, 1
    while True:  # two restarts within a second get two folders
        try:
            folder.mkdir()
            break
        except FileExistsError:
            n += 1
            folder = stamp.with_name(f"{stamp.name}-{n}")
    for path in present:
        path.replace(folder / path.name)
    return folder


def set_aside_evaluations(run_dir: Path) -> Path | None:
    """Before a finished run trains further: its evaluations (``eval*.json``) were of the shorter
    run, so they move to ``discarded/`` (printed), never to be reused for the longer one."""
    kept = move_to_discarded(run_dir, sorted(Path(run_dir).glob("eval*.json")))
    if kept is not None:
        print(f"{run_dir}: the evaluations of the run before it was extended were moved to {kept}", flush=True)
    return kept


def no_config_error(run_dir: Path, doing: str = "") -> UserError:
    """The error for a directory without ``config.json``: one a run was stopped in before its config
    was written (only the lock and temporary files), which says how to start it, or any other."""
    run_dir = Path(run_dir)
    prefix = f"cannot {doing}: " if doing else ""
    leftovers = run_dir.is_dir() and all(p.name == LOCK_NAME or p.name.endswith(".tmp") for p in run_dir.iterdir())
    if leftovers:
        return UserError(
            f"{prefix}{run_dir} holds no run yet (it was stopped before its config was written); "
            f"start it with `learn2adapt train --run-dir {run_dir}` and its options"
        )
    return UserError(f"{prefix}{run_dir} is not a run directory (no config.json)")


def remove_leftover_temporaries(directory: Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that atomic writes (:func:`atomic_write_bytes`) left behind
    when the process was killed mid-write, in ``directory`` and its ``steps/<N>/`` folders.

    Called by :class:`RunLock` once it holds the lock, so never while another writer may be
    filling one: a killed run's leftovers (a full copy of the checkpoint each) go at its next start.
    """
    root = Path(directory)
    found = [*root.glob(".*.tmp"), *root.glob("steps/*/.*.tmp")]
    for path in found:
        path.unlink(missing_ok=True)
    return found


class RunLock:
    """Exclusive lock on a directory, held until :meth:`release` or the process ends.

    Args:
        directory: the run (or comparison) directory; created if missing.
        what: how the holder is described in the error (``run``, ``comparison``).

    Raises:
        RunDirBusy: another live process holds the lock.
        UserError: the directory cannot be created or the lock file written.
    """

    def __init__(self, directory: Path, what: str = "run") -> None:
        self.path = Path(directory) / LOCK_NAME
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(os_error_message(e, f"lock {self.path.parent}")) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise RunDirBusy(
                f"{self.path.parent} is in use by another {what} (process {holder}); wait for it to finish, "
                f"stop it, or use another directory"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        self.removed = remove_leftover_temporaries(self.path.parent)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def check_writable(directory: Path) -> None:
    """Raise :class:`UserError` unless a file can be created in ``directory`` (created if missing)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(os_error_message(e, f"write to {directory}")) from None


def atomic_write_bytes(
    path: Path, data: bytes | None = None, writer: Callable[[BinaryIO], object] | None = None
) -> None:
    """Write ``data`` (or whatever ``writer(file)`` writes) to ``path`` atomically.

    Raises:
        UserError: the write failed (no space, read-only...); ``path`` is unchanged and no
            temporary file is left behind.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            if writer is not None:
                writer(f)
            else:
                f.write(data or b"")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        raise UserError(os_error_message(e, f"write {path}") + f"; {path.name} is unchanged") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode())
