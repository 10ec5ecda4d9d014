"""The process's memory allocator: keep freed memory for the next tensor instead of returning it.

A plan allocates the same large activations at every model evaluation (PE-TS at the
``medium`` size: 5 members x 2,000 rows x 256 floats, 10 MB a layer). glibc's malloc hands
freed memory above its trim threshold back to the operating system, so each new tensor of that
size is page-faulted in again and zeroed by the kernel: ~50,000 page faults per plan, which made
that plan 1.3-1.5x slower on the 2-core EPYC (docs/experiments.md, "Page faults in planning").
:func:`keep_freed_memory` raises both thresholds once per process; the cost is that the process
keeps its peak heap (it does not shrink after a large step).

Called by every ``learn2adapt`` command and by ``compare``'s worker processes; a program that
uses the library directly calls it once at start. Setting ``MALLOC_TRIM_THRESHOLD_`` or
``MALLOC_MMAP_THRESHOLD_`` in the environment keeps glibc's behaviour under the user's control
(the function then changes nothing), and outside glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap (glibc's own ceiling for its dynamic threshold).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap is returned to the system only above this much.
TRIM_THRESHOLD = 512 << 20

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc malloc's mmap and trim thresholds for this process; True if they were set.

    Both together: setting either one switches off glibc's dynamic adjustment of the mmap
    threshold, so the trim threshold alone would leave every tensor over 128 KB to a fresh
    ``mmap`` (measured: 2.8x more page faults than the default).
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    if any(k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return _done
    if not hasattr(libc, "gnu_get_libc_version"):  # not glibc: other mallopt parameters, if any
        return _done
    _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _done
