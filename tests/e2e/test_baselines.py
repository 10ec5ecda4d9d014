"""Model-free baselines (stable-baselines3): train, evaluate and resume through the CLI, checkpoints by our rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import PENDULUM, as_sets

pytest.importorskip("stable_baselines3")

TINY = ["episode_length=50", "baseline.checkpoint_every=100", "baseline.rollout=64", "baseline.batch_size=32",
        "baseline.learning_starts=50", "eval.episodes_per_task=1"]  # fmt: skip


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_train_evaluate_and_resume(cli, one_line_error, tmp_path: Path, algo: str) -> None:
    run = tmp_path / algo
    code, _, err = cli("train", "--env", PENDULUM, "--algo", algo, "--run-dir", run, "--quiet",
                       *as_sets([*TINY, "baseline.steps=200"]))  # fmt: skip
    assert code == 0, err
    rows = [r.split(",") for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    steps = [int(r[1]) for r in rows]
    # A row per checkpoint, at the first rollout end after every 100 steps (PPO: 64-step rollouts).
    assert steps == ([128, 256] if algo == "ppo" else [100, 200])
    # The checkpoint holds tensors and plain containers only (no pickled SB3 objects).
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["env_steps"] == steps[-1] and state["algo"] == algo and "digest" in state
    if algo == "sac":
        assert state["replay"]["observations"].shape[0] == 200
    code, _, err = cli("eval", run, "--quiet", "--episodes", "1")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    assert result["algo"] == algo and result["train_env_steps"] == steps[-1] and result["mean"] == result["mean"]
    # Resume extends the budget and continues from the checkpoint's step count.
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "baseline.steps=300")
    assert code == 0, err
    assert torch.load(run / "checkpoint.pt", weights_only=True)["env_steps"] >= 300
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "baseline.learning_rate=0.1")
    one_line_error(code, err, "baseline.learning_rate cannot change")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_baseline_from_a_gpu_resumes_here_with_set_device(cli, one_line_error, tmp_path: Path) -> None:
    run = tmp_path / "ppo"
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "ppo", "--run-dir", run, "--quiet",
                       *as_sets([*TINY, "baseline.steps=100"]))  # fmt: skip
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "device": "cuda"}))  # as a GPU machine writes it
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "baseline.steps=200")
    one_line_error(code, err, "ran on 'cuda'", "--set device=cpu")
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "baseline.steps=200", "--set", "device=cpu")
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["device"] == "cpu"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["env_steps"] >= 200


def test_the_checkpoint_hook_runs_once_per_checkpoint(tmp_path: Path) -> None:
    from learn2adapt.baselines.sb3 import train_baseline
    from learn2adapt.run.options import apply_overrides
    from learn2adapt.run.presets import preset_config

    cfg = apply_overrides(preset_config(PENDULUM, "quick", "ppo"), [*TINY, "baseline.steps=200"])
    calls: list[int] = []
    train_baseline(cfg, tmp_path / "run", progress=False, on_checkpoint=lambda st: calls.append(st.env_steps) or {})
    # One held-out probe per metrics row (each probe costs evaluation episodes).
    assert calls == [128, 256]


def test_a_comparison_mixes_baselines_and_model_based_methods(cli, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    code, _, err = cli(
        "compare", "--env", PENDULUM, "--algos", "mb,ppo", "--seeds", "1", "--out", out, "--quiet", "--sample-efficiency",
        *as_sets([*TINY, "baseline.steps=100", "iterations=1", "random_episodes=2", "episodes_per_iteration=1",
                "num_envs=1", "model.hidden=16", "fit.max_epochs=1", "planner.horizon=4", "planner.num_candidates=30"]),
    )  # fmt: skip
    assert code == 0, err
    report = (out / "report" / "report.md").read_text()
    assert (
        "| PPO |" in report and "## Sample efficiency" in report and (out / "report" / "sample_efficiency.png").exists()
    )
    for run in ("mb-s0", "ppo-s0"):  # the held-out return after every iteration / checkpoint
        header = (out / "runs" / run / "metrics.csv").read_text().splitlines()[0]
        assert "heldout_return" in header, (run, header)


def test_steps_to_reach_the_best_model_based_return() -> None:
    import numpy as np

    from learn2adapt.reporting.records import steps_to_reach

    curves = {
        "grbal": (np.array([1e3, 2e3]), np.array([-50.0, 10.0])),
        "mb": (np.array([1e3, 2e3]), np.array([-80.0, -20.0])),
        "ppo": (np.array([1e4, 1e5, 1e6]), np.array([-90.0, 5.0, 12.0])),
        "sac": (np.array([1e4, 1e5]), np.array([-90.0, -60.0])),
    }
    target, table = steps_to_reach(curves, ["ppo", "sac"])
    assert target == 10.0
    assert table == {
        "grbal": "2000",
        "mb": "not reached within 2000",
        "ppo": "1000000",
        "sac": "not reached within 100000",
    }


def test_without_stable_baselines3_the_error_names_the_install_command(cli, one_line_error, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "ppo", "--run-dir", tmp_path / "r", *as_sets(TINY))
    one_line_error(code, err, "needs stable-baselines3", "pip install")
    assert not (tmp_path / "r").exists()
