"""A run killed with SIGKILL mid-iteration resumes with no collected data lost; bad checkpoints are refused."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from learn2adapt.cli import main
from learn2adapt.run.state import load_run

# Iterations of about a second each, so the kill lands inside one.
TRAIN = """
import sys
from learn2adapt.run.config import RunConfig, apply_overrides
from learn2adapt.run.loop import train
cfg = apply_overrides(RunConfig(env="learn2adapt/PendulumVaried-v0", algo="mb", seed=5), [
    "iterations=6", "random_episodes=2", "episodes_per_iteration=2", "episode_length=100", "num_envs=2",
    "model.hidden=32x32", "fit.max_epochs=3", "planner.horizon=8", "planner.num_candidates=300"])
train(cfg, sys.argv[1], progress=False)
"""


def _iterations(run_dir):
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [int(row["iteration"]) for row in csv.DictReader(f)]


def _kill_mid_iteration(run_dir, after_iteration):
    """Start training in a subprocess and SIGKILL it once ``after_iteration`` is checkpointed."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN, str(run_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 60
    try:
        while after_iteration not in _iterations(run_dir):
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("training did not reach the iteration in time")
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the next iteration's collection
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_iteration_then_resume_keeps_every_transition(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _kill_mid_iteration(run_dir, after_iteration=1)
    assert not (run_dir / "DONE").exists()
    before = load_run(run_dir)
    assert before.iteration >= 1
    saved = {k: getattr(before.buffer, k).copy() for k in ("obs", "act", "next_obs", "reward", "episode_id")}
    n = len(before.buffer)

    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    capsys.readouterr()
    after = load_run(run_dir)
    assert (run_dir / "DONE").exists()
    assert after.iteration == after.cfg.iterations == 6
    # Every transition collected before the last checkpoint is still there, in order...
    for k, v in saved.items():
        np.testing.assert_array_equal(getattr(after.buffer, k)[:n], v, err_msg=k)
    # ...and the iterations continued from it: 0..6 once each, the new data appended.
    assert _iterations(run_dir) == list(range(7))
    assert len(after.buffer) == (2 + 6 * 2) * 100


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from learn2adapt.run.config import RunConfig
    from learn2adapt.run.loop import train
    from learn2adapt.run.options import apply_overrides

    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    cfg = apply_overrides(
        RunConfig(env="learn2adapt/PendulumVaried-v0", algo="mb", seed=1),
        ["iterations=0", "random_episodes=2", "episode_length=40", "num_envs=1", "model.hidden=16", "fit.max_epochs=1"],
    )
    train(cfg, run_dir, progress=False)
    return run_dir


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_checkpoint_is_refused_in_one_line(one_line_error, finished_run, tmp_path, capsys, damage):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "DONE").unlink()
    ckpt = run_dir / "checkpoint.pt"
    data = ckpt.read_bytes()
    if damage == "truncate":
        ckpt.write_bytes(data[: len(data) // 2])
    else:
        ckpt.write_bytes(b"\x00garbage" * 64 + data[512:])
    code = main(["train", "--resume", str(run_dir), "--quiet"])
    one_line_error(code, capsys.readouterr().err, "truncated or corrupt", "checkpoint.pt")
    code = main(["eval", str(run_dir), "--quiet"])
    one_line_error(code, capsys.readouterr().err, "truncated or corrupt")


def test_nan_in_a_fit_stops_naming_the_iteration_and_keeps_the_last_good_checkpoint(
    one_line_error, tmp_path, capsys, monkeypatch
):
    import torch

    from learn2adapt.adaptation.rebal import ReBAL

    real_fit, calls = ReBAL.fit, []

    def fit_with_nan_weights_from_iteration_1(self, buffer, rng, progress=True):
        calls.append(len(buffer))
        if len(calls) == 2:  # iteration 1: the model diverged (NaN weights)
            with torch.no_grad():
                next(self.module.parameters()).fill_(float("nan"))
        return real_fit(self, buffer, rng, progress)

    monkeypatch.setattr(ReBAL, "fit", fit_with_nan_weights_from_iteration_1)
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            "--algo",
            "rebal",
            "--env",
            "learn2adapt/PendulumVaried-v0",
            "--run-dir",
            str(run_dir),
            "--quiet",
            "--set",
            "iterations=3",
            "--set",
            "random_episodes=2",
            "--set",
            "episodes_per_iteration=1",
            "--set",
            "episode_length=40",
            "--set",
            "num_envs=1",
            "--set",
            "model.hidden=16",
            "--set",
            "adaptation.rnn_hidden=8",
            "--set",
            "fit.max_epochs=1",
            "--set",
            "planner.num_candidates=20",
        ]
    )
    one_line_error(code, capsys.readouterr().err, "iteration 1", "iteration 0")
    assert len(calls) == 2 and not (run_dir / "DONE").exists()
    kept = load_run(run_dir)  # the checkpoint of iteration 0: finite weights, its data
    assert kept.iteration == 0 and len(kept.buffer) == calls[0] == 2 * 40
    assert all(torch.isfinite(p).all() for p in kept.rule.module.parameters())
    assert _iterations(run_dir) == [0]
