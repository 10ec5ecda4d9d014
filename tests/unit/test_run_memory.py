"""The run's memory estimate refuses impossible sizes before anything is allocated (issue 40, 6 and 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from learn2adapt.errors import ConfigError
from learn2adapt.run.config import RunConfig
from learn2adapt.run.memory import GIB, buffer_bytes, check_run_memory, model_bytes, planning_bytes
from learn2adapt.run.options import apply_overrides
from tests.conftest import PENDULUM


def _cfg(*overrides: str) -> RunConfig:
    return apply_overrides(RunConfig(env=PENDULUM), list(overrides)).validate()


def test_each_part_grows_with_the_options_that_set_it() -> None:
    base = _cfg("model.hidden=64x64")
    assert model_bytes(_cfg("model.hidden=128x128"), 3, 1) > 3 * model_bytes(base, 3, 1)
    assert model_bytes(_cfg("model.hidden=64x64", "model.ensemble=5", "algo=mb"), 3, 1) == 5 * model_bytes(base, 3, 1)
    assert buffer_bytes(_cfg("episode_length=400"), 3, 1) == 2 * buffer_bytes(_cfg("episode_length=200"), 3, 1)
    assert planning_bytes(_cfg("num_envs=4"), 3, 1) == 4 * planning_bytes(_cfg("num_envs=1"), 3, 1)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["model.hidden=40000x40000"], "for the model and its optimiser: lower model.hidden"),
        (
            ["episode_length=2000000000", "random_episodes=1000000"],
            "for the collected transitions: lower episode_length",
        ),
        (["planner.num_candidates=100000000"], "for planning: lower planner.num_candidates"),
    ],
)
def test_sizes_beyond_the_machine_are_refused(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        check_run_memory(_cfg(*overrides), 3, 1, available=16 * GIB)
    check_run_memory(_cfg(), 3, 1, available=16 * GIB)  # the default run fits


def test_the_cli_refuses_a_huge_model_in_one_line_and_writes_nothing(cli, one_line_error, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = cli("train", "--run-dir", run, "--set", "model.hidden=100000x100000x100000")  # ~400 GB
    one_line_error(code, err, "GiB", "lower model.hidden")
    assert not run.exists()
