"""How many CPUs this process may run on: its affinity mask, not the machine's CPU count.

``os.cpu_count()`` counts the machine's CPUs. A process confined to fewer (``taskset``, a
cluster scheduler's cpuset, a container) that starts that many torch threads oversubscribes
its share: on a 16-CPU host, `learn2adapt bench` pinned to 2 CPUs measured an fp32 matmul
rate of 5.5 GFLOP/s with 16 threads (1,295 unpinned). Every default thread or worker count in
the library starts from :func:`usable_cpus`.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs in this process's affinity mask (``os.cpu_count()`` where the platform has no mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1
