"""Thread and worker defaults follow the CPUs a process may run on, not the machine's count."""

from __future__ import annotations

import os

import pytest

from learn2adapt import cpus


def test_usable_cpus_is_the_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5}, raising=False)
    assert cpus.usable_cpus() == 2


def test_usable_cpus_without_a_mask_counts_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert cpus.usable_cpus() == 3


def test_workers_share_the_pinned_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from learn2adapt.experiments.runner import ProcessPoolRunner

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    runner = ProcessPoolRunner(2)
    try:
        assert runner.threads == 2  # 4 pinned CPUs / 2 workers, not 64 / 2
    finally:
        runner.close()
