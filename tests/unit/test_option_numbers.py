"""Every float option is refused when not finite, and every integer beyond int64, with exit 2
(issue 40, cases 4 and 6): derived from the fields' types, so the scan covers options added later."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from learn2adapt.run.config import INT64_MAX, RunConfig


def _fields(cls: type, prefix: str = "") -> Iterator[tuple[str, typing.Any, dataclasses.Field]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            yield from _fields(kind, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", kind, f


FLOATS = [name for name, kind, _ in _fields(RunConfig) if kind is float]
INTS = [name for name, kind, _ in _fields(RunConfig) if kind is int]
BOUNDED = [(name, f.metadata) for name, kind, f in _fields(RunConfig) if {"positive", "nonnegative"} & set(f.metadata)]


def test_the_scan_sees_the_options_of_every_section() -> None:
    sections = {name.rsplit(".", 1)[0] for name in FLOATS if "." in name}
    assert {"fit", "adaptation", "adaptation.mixture", "planner.mppi", "planner.icem", "baseline"} <= sections
    assert "seed" in INTS and "num_envs" in INTS and len(FLOATS) >= 20


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_float_option_that_is_not_finite_is_one_line(cli, one_line_error, tmp_path: Path, name: str, value: str):
    run = tmp_path / "run"
    code, _, err = cli("train", "--run-dir", run, "--set", f"{name}={value}")
    one_line_error(code, err, name)
    assert not run.exists()


@pytest.mark.parametrize(("name", "metadata"), BOUNDED)
def test_a_bounded_float_option_out_of_range_is_one_line(cli, one_line_error, tmp_path: Path, name, metadata):
    bad = "0" if metadata.get("positive") else "-0.5"
    code, _, err = cli("train", "--run-dir", tmp_path / "run", "--set", f"{name}={bad}")
    one_line_error(code, err, name, "must be >" if metadata.get("positive") else "must be >= 0")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", INTS)
def test_an_integer_beyond_int64_is_one_line(cli, one_line_error, tmp_path: Path, name: str):
    run = tmp_path / "run"
    code, _, err = cli("train", "--run-dir", run, "--set", f"{name}={INT64_MAX + 1}")
    one_line_error(code, err, name, "beyond a 64-bit integer")
    assert not run.exists()


def test_seed_beyond_int64_on_the_command_line_leaves_nothing(cli, one_line_error, tmp_path: Path):
    run = tmp_path / "run"
    code, _, err = cli("train", "--seed", "99999999999999999999", "--run-dir", run)
    one_line_error(code, err, "seed=99999999999999999999 is beyond a 64-bit integer")
    assert not run.exists()
