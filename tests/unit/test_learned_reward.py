"""The learned reward and termination (learn2adapt.models.reward) and their use by a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer
from learn2adapt.models.config import FitConfig
from learn2adapt.models.reward import LearnedReward
from tests.conftest import PENDULUM, TINY_RUN, as_sets

pytestmark = pytest.mark.usefixtures("one_thread")


def _reward(obs: np.ndarray, act: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    return nxt[:, 0] - 0.5 * act[:, 0] ** 2 + 0.3 * obs[:, 1]


def _buffer(episodes: int = 12, length: int = 50, seed: int = 0) -> TrajectoryBuffer:
    """Random transitions with a known reward; an episode terminates where next_obs[2] > 1.5."""
    rng = np.random.default_rng(seed)
    buf = TrajectoryBuffer(3, 1)
    for _ in range(episodes):
        obs = rng.normal(size=(length, 3)).astype(np.float32)
        act = rng.uniform(-1, 1, size=(length, 1)).astype(np.float32)
        nxt = (obs + 0.1 * rng.normal(size=(length, 3))).astype(np.float32)
        done = nxt[:, 2] > 1.5
        buf.add_episode(Episode(obs, act, nxt, _reward(obs, act, nxt).astype(np.float32), done, [{}] * length))
    return buf


def test_it_learns_a_reward_and_termination_it_did_not_see() -> None:
    torch.manual_seed(0)
    model = LearnedReward(3, 1, [64, 64], termination=True)
    cfg = FitConfig(max_epochs=60, patience=10, batch_size=64, lr=3e-3)
    metrics = model.fit(_buffer(), cfg, np.random.default_rng(0), progress=False)
    assert metrics["reward/val_relative"] < 0.2
    fresh = _buffer(episodes=4, seed=1)
    obs, act, nxt = (torch.as_tensor(getattr(fresh, k)) for k in ("obs", "act", "next_obs"))
    with torch.no_grad():
        predicted = model.reward_fn(obs, act, nxt).numpy()
        ends = model.termination_fn(obs, act, nxt).numpy()
    truth = _reward(fresh.obs, fresh.act, fresh.next_obs)
    assert np.sqrt(np.mean((predicted - truth) ** 2)) < 0.2 * truth.std()
    assert (ends == fresh.terminated).mean() > 0.95
    # batched over any leading dims, as the planner calls it
    assert model.reward_fn(obs.reshape(4, 50, 3), act.reshape(4, 50, 1), nxt.reshape(4, 50, 3)).shape == (4, 50)


def test_an_unfitted_model_is_no_better_than_the_mean() -> None:
    model = LearnedReward(3, 1, [16], termination=False)
    cfg = FitConfig(max_epochs=1, patience=1, batch_size=64, lr=1e-6)
    assert model.fit(_buffer(), cfg, np.random.default_rng(0), progress=False)["reward/val_relative"] > 0.5


def test_a_family_run_with_a_learned_reward_plans_with_it_and_resumes(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    options = [*TINY_RUN, "iterations=1", "reward=learned", "eval.episodes_per_task=1"]
    code, _, err = cli("train", "--algo", "grbal", "--env", PENDULUM, "--run-dir", run, "--quiet", *as_sets(options))
    assert code == 0, err
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "reward/val_rmse" in header
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert "reward_model" in state and "in_mean" in state["reward_model"]
    code, _, err = cli("train", "--resume", run, "--set", "iterations=2", "--quiet")
    assert code == 0, err
    code, out, err = cli("eval", run, "--quiet")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    assert result["train_env_steps"] == 40 * 4
    assert 0 < result["reward_error"] < 20 and "learned reward: root-mean-square error" in out


@pytest.mark.parametrize(
    ("algo", "options", "needle"),
    [
        ("grbal", ["termination=learned"], "set reward=learned too"),
        ("sac", ["reward=learned"], "--algo sac does not plan"),
        ("grbal", ["reward=my_module:reward"], "reward is for Gymnasium environments"),
    ],
)
def test_learned_options_that_cannot_act_are_refused(
    cli, one_line_error, tmp_path: Path, algo: str, options: list[str], needle: str
) -> None:
    code, _, err = cli("train", "--algo", algo, "--env", PENDULUM, "--run-dir", tmp_path / "r", *as_sets(options))
    one_line_error(code, err, needle)
    assert not (tmp_path / "r").exists()
