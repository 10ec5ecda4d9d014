"""``learn2adapt compare-online``: the same meta-trained models evaluated under several online rules."""

import json

import pytest

from tests.conftest import PENDULUM, as_sets

GRBAL = [
    "iterations=1", "random_episodes=3", "episodes_per_iteration=1", "episode_length=60", "num_envs=1",
    "model.hidden=16", "fit.max_epochs=2", "planner.horizon=4", "planner.num_candidates=30",
    "adaptation.past=8", "adaptation.future=8",
]  # fmt: skip


@pytest.fixture(scope="module")
def grbal_run(tmp_path_factory):
    from learn2adapt.cli import main

    run = tmp_path_factory.mktemp("online") / "grbal-s0"
    code = main(["train", "--env", PENDULUM, "--algo", "grbal", "--run-dir", str(run), "--quiet", *as_sets(GRBAL)])
    assert code == 0
    return run


def test_every_rule_is_evaluated_once_and_tabled_against_the_first(grbal_run, cli, tmp_path) -> None:
    out = tmp_path / "cmp"
    argv = ["compare-online", grbal_run, "--schedule", "recurring:period=20", "--rules", "grbal,mole",
            "--episodes", "1", "--out", out]  # fmt: skip
    code, stdout, err = cli(*argv)
    assert code == 0, err
    for rule in ("grbal", "mole"):  # one file per (run, rule, schedule), as `eval --output` writes it
        assert f"eval grbal-s0 --online {rule} --schedule recurring:period=20" in stdout
        result = json.loads((out / f"grbal-s0-{rule}-recurring-period-20.json").read_text())
        assert result["algo"] == rule and result["test_time"] == [f"online={rule}"]
        assert f"saved {out / f'grbal-s0-{rule}-recurring-period-20.json'}" in stdout
    report = (out / "report.md").read_text()
    assert report.startswith("# Online rules on the same models\n\nCommand: `learn2adapt compare-online ")
    assert "--rules grbal,mole --episodes 1 --out" in report
    assert "| mole |" in report and "mole - grbal: " in report and "paired by episode" in report
    summary = json.loads((out / "summary.json").read_text())
    by_schedule = summary["recurring:period=20"]
    assert set(by_schedule) == {"grbal", "mole", "mole-grbal"}
    tasks = len(result["tasks"])
    assert by_schedule["mole-grbal"]["by_episode"]["pairs"] == tasks  # one episode per test task
    assert "report: " in stdout and "mole - grbal: " in stdout
    # Again: every evaluation is reused, the tables are the same.
    code, stdout, err = cli(*argv)
    assert code == 0, err
    assert "eval grbal-s0" not in stdout
    assert json.loads((out / "summary.json").read_text()) == summary


def test_what_is_not_a_comparison_of_rules_is_one_line(grbal_run, cli, one_line_error, tmp_path) -> None:
    out = tmp_path / "cmp"
    code, _, err = cli("compare-online", tmp_path / "nope", "--schedule", "fixed", "--out", out)
    one_line_error(code, err, "not run directories", "nope")
    code, _, err = cli("compare-online", grbal_run, "--schedule", "fixed", "--rules", "grbal", "--out", out)
    one_line_error(code, err, "--rules needs two rules")
    code, _, err = cli("compare-online", grbal_run, "--schedule", "nosuch:t=1", "--out", out)
    one_line_error(code, err, "nosuch")
    code, _, err = cli("compare-online", grbal_run, "--schedule", "fixed", "--episodes", "0", "--out", out)
    one_line_error(code, err, "--episodes must be >= 1")
    assert not out.exists()
