"""Fixtures shared by every test tier (``tests/unit``, ``tests/envs``, ``tests/e2e``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from learn2adapt.cli import main

#: The cheapest environment family: what the tests train on.
PENDULUM = "learn2adapt/PendulumVaried-v0"
#: A training run of a second or two on PENDULUM (tests add ``iterations`` and what they vary).
TINY_RUN = [
    "random_episodes=2",
    "episodes_per_iteration=1",
    "episode_length=40",
    "num_envs=1",
    "model.hidden=16",
    "fit.max_epochs=1",
    "planner.horizon=4",
    "planner.num_candidates=30",
]


def as_sets(options: list[str], algo: str | None = None) -> list[str]:
    """``["k=v", ...]`` as CLI arguments ``--set k=v ...``; with ``algo``, only the options it reads
    (one tiny list serves several algorithms, and an option an algorithm does not read is refused)."""
    from learn2adapt.run.options import read_by

    return [arg for o in (options if algo is None else read_by(options, algo)) for arg in ("--set", o)]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``learn2adapt ARGS...`` in this process; returns ``(exit code, stdout, stderr)``."""

    def run(*argv: object) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def one_line_error() -> Callable[..., None]:
    """Assert a user error: exit code 2 and one ``learn2adapt: error:`` line containing each needle."""

    def check(code: int, err: str, *needles: str) -> None:
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("learn2adapt: error:"), err
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])

    return check


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module of tiny models (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    Why: with other work on the machine, waking a second OpenMP thread for every small op made
    such tests 7-50x slower (measured: 9 s with one thread against 68 s with two).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
