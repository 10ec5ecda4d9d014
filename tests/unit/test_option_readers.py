"""An option that the run's algorithm does not read is refused, never silently ignored: the
``algos`` metadata of the config's fields says who reads what (run.options.readers)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest

from learn2adapt.adaptation import REGISTRY
from learn2adapt.errors import ConfigError
from learn2adapt.experiments.jobs import resolve_configs
from learn2adapt.reporting.variants import Entry
from learn2adapt.run.config import RunConfig
from learn2adapt.run.options import all_keys, check_read, read_by, readers
from learn2adapt.run.state import with_online_rule
from tests.conftest import PENDULUM


def _sections(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += [f"{prefix}{f.name}", *_sections(hints[f.name], f"{prefix}{f.name}.")]
    return out


def test_every_reader_is_a_registered_algorithm_and_every_option_has_one() -> None:
    for key in all_keys(RunConfig()) + _sections(RunConfig):
        read = readers(key)
        assert read is None or (read and set(read) <= set(REGISTRY)), (key, read)


def test_the_innermost_field_that_names_its_readers_decides() -> None:
    assert readers("adaptation.mixture.alpha") == ("mole", "mole-oracle")
    assert readers("adaptation.de_lr") == ("mbde",)
    assert "sac" not in readers("adaptation.past") and "grbal" in readers("adaptation.past")
    assert readers("baseline.steps") == ("ppo", "sac")
    assert readers("iterations") is None and readers("eval.episodes_per_task") is None
    assert readers("no.such.key") is None  # unknown keys are refused by the coercion, with suggestions


def test_an_option_the_algorithm_does_not_read_is_one_line() -> None:
    check_read(["adaptation.mixture.alpha=3"], ["mole"])
    check_read(["iterations=3", "planner.horizon=5"], ["mb"])
    with pytest.raises(ConfigError, match=r"^--set adaptation.mixture.alpha has no effect with --algo mb: only mole"):
        check_read(["adaptation.mixture.alpha=3"], ["mb"])
    with pytest.raises(ConfigError, match="--set planner.horizon has no effect with --algo sac"):
        check_read(["planner.horizon=5"], ["sac"])


def test_train_refuses_it_before_anything_is_written(cli, one_line_error, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "grbal", "--set", "adaptation.de_lr=0.1", "--run-dir", run)
    one_line_error(code, err, "adaptation.de_lr has no effect with --algo grbal", "only mbde")
    assert not run.exists()


def test_a_test_time_option_the_online_rule_does_not_read_is_refused() -> None:
    st = SimpleNamespace(cfg=RunConfig(algo="mb"))
    with pytest.raises(ConfigError, match="--set adaptation.guard has no effect with --algo mb"):
        with_online_rule(st, "mb", ["adaptation.guard=true"])  # type: ignore[arg-type]


def test_a_comparison_needs_one_reader_for_its_options_and_the_variants_own_algorithm() -> None:
    entries = [Entry("grbal", "grbal"), Entry("sac", "sac")]
    configs = resolve_configs(PENDULUM, "quick", entries, [0], ["baseline.steps=50", "adaptation.inner_lr=0.01"])
    assert [c.baseline.steps for c in configs] == [50, 50]  # set on every run, read by sac's
    with pytest.raises(ConfigError, match="adaptation.de_lr has no effect with --algo grbal,sac"):
        resolve_configs(PENDULUM, "quick", entries, [0], ["adaptation.de_lr=0.1"])
    with pytest.raises(ConfigError, match="adaptation.guard has no effect with --algo rebal"):
        resolve_configs(PENDULUM, "quick", [Entry("rebal+g", "rebal", "g", ("adaptation.guard=true",))], [0], [])


def test_rules_evaluated_with_one_set_of_options_each_take_what_they_read() -> None:
    sets = ["adaptation.mixture.lr=0.001", "eval.episodes_per_task=2", "adaptation.guard=true"]
    assert read_by(sets, "mole") == ["adaptation.mixture.lr=0.001", "eval.episodes_per_task=2"]
    assert read_by(sets, "grbal") == ["eval.episodes_per_task=2", "adaptation.guard=true"]
    check_read(sets, ["grbal", "mole"])  # every option has a reader among them
