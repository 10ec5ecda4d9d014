"""Command line: help, and one-line errors for bad input."""

import subprocess
import sys

import pytest

from tests.conftest import PENDULUM


def test_unknown_env(cli, one_line_error, tmp_path):
    code, _, err = cli("train", "--algo", "mb", "--env", "NoSuchEnv-v0", "--run-dir", str(tmp_path / "r"))
    one_line_error(code, err, "unknown environment", "NoSuchEnv-v0", PENDULUM)
    assert not (tmp_path / "r").exists()


def test_unknown_algorithm(cli, one_line_error, tmp_path):
    code, _, err = cli("train", "--algo", "trpo", "--env", PENDULUM, "--run-dir", str(tmp_path / "r"))
    one_line_error(code, err, "unknown algorithm", "trpo", "grbal")


def test_unknown_config_key_suggests_the_close_one(cli, one_line_error, tmp_path):
    code, _, err = cli("train", "--env", PENDULUM, "--set", "planner.horizn=5", "--run-dir", str(tmp_path / "r"))
    one_line_error(code, err, "unknown config key", "planner.horizn", "planner.horizon")


def test_bad_config_value_and_impossible_config(cli, one_line_error, tmp_path):
    code, _, err = cli("train", "--env", PENDULUM, "--set", "iterations=lots", "--run-dir", str(tmp_path / "r"))
    one_line_error(code, err, "iterations")
    code, _, err = cli("train", "--env", PENDULUM, "--set", "adaptation.past=300", "--run-dir", str(tmp_path / "r"))
    one_line_error(code, err, "episode_length")


@pytest.mark.parametrize(
    "algo, options, needle",
    [
        ("mb", ["planner.horizon=0"], "horizon"),
        ("mb", ["planner.name=cem", "planner.cem.alpha=2"], "CEM"),
        ("grbal", ["adaptation.step_size=huge"], "step_size"),
        ("rebal", ["adaptation.rnn=tcn"], "adaptation.rnn"),
    ],
)
def test_an_option_a_component_refuses_is_one_line_and_writes_nothing(
    cli, one_line_error, tmp_path, algo, options, needle
):
    sets = [arg for option in options for arg in ("--set", option)]
    code, _, err = cli("train", "--algo", algo, "--env", PENDULUM, *sets, "--run-dir", str(tmp_path / "r"))
    one_line_error(code, err, needle)
    assert not (tmp_path / "r").exists()


def test_missing_run_directory(cli, one_line_error, tmp_path):
    code, _, err = cli("eval", str(tmp_path / "nope"))
    one_line_error(code, err, "does not exist")
    code, _, err = cli("train", "--resume", str(tmp_path / "nope"))
    one_line_error(code, err, "does not exist")


def test_options_lists_every_field_with_help(cli, one_line_error):
    code, out, _ = cli("options", "--env", PENDULUM, "--algo", "grbal")
    assert code == 0
    for key in ("planner.horizon", "adaptation.inner_lr", "model.hidden", "fit.patience", "eval.schedule"):
        line = next(row for row in out.splitlines() if row.strip().startswith(key + " "))
        assert len(line.split()) > 2, f"{key} has no help text"
    keys = {row.split()[0] for row in out.splitlines()[1:]}
    assert "adaptation.de_lr" not in keys and "baseline.steps" not in keys  # what GrBAL does not read
    code, out, _ = cli("options", "--env", PENDULUM, "--algo", "sac")
    keys = {row.split()[0] for row in out.splitlines()[1:]}
    assert code == 0 and "baseline.steps" in keys and not any(k.startswith(("planner.", "model.")) for k in keys)


def test_entry_point_help(cli, one_line_error):
    out = subprocess.run(
        [sys.executable, "-m", "learn2adapt.cli", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--resume" in out and "--set" in out


@pytest.mark.parametrize("algo", ["grbal", "rebal"])
def test_episodes_too_short_for_one_segment_is_one_line(cli, one_line_error, tmp_path, algo):
    # Random CartPole episodes end after a few dozen steps, far below M + K = 160.
    code, _, err = cli(
        "train",
        "--algo",
        algo,
        "--env",
        "learn2adapt/CartPoleVaried-v0",
        "--run-dir",
        str(tmp_path / "r"),
        "--quiet",
        "--set",
        "iterations=1",
        "--set",
        "random_episodes=2",
        "--set",
        "adaptation.past=80",
        "--set",
        "adaptation.future=80",
        "--set",
        "model.hidden=16",
        "--set",
        "fit.max_epochs=1",
    )
    one_line_error(code, err, "iteration 0", "M + K = 160", "adaptation.past")
