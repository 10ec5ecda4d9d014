"""The planning diagnosis: what it measures, that a perfect model scores perfectly, and that it only observes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learn2adapt.envs import make_env
from learn2adapt.evaluation.diagnosis import DiagnosingAgent, score_candidates
from learn2adapt.evaluation.oracle import OracleAgent
from learn2adapt.planning.random_shooting import RandomShooting
from learn2adapt.run.rollout import run_episodes
from tests.conftest import PENDULUM
from tests.e2e.test_oracle import CHEETAH, TINY


def test_the_measures_of_one_state() -> None:
    truth = np.array([1.0, 3.0, 2.0, 0.0])
    same = score_candidates(truth.copy(), truth, step=0)
    assert same is not None and (same.spearman, same.optimism, same.regret, same.bias) == (1.0, 0.0, 0.0, 0.0)
    assert same.headroom == 3.0 - 1.5
    # The model overrates candidate 3 by 5: the planner would pick it (true 0 against the best 3).
    fooled = score_candidates(truth + np.array([0.0, 0.0, 0.0, 5.0]), truth, step=7)
    assert fooled is not None and fooled.step == 7
    assert fooled.optimism == 5.0 and fooled.regret == 3.0 and fooled.bias == 1.25
    # A candidate the model rolls out to NaN (ranked last by the planners) is left out.
    blown = score_candidates(np.array([1.0, 3.0, 2.0, -np.inf]), truth, step=0)
    assert blown is not None and blown.spearman == 1.0 and blown.regret == 0.0
    assert score_candidates(np.array([np.nan, np.nan, 1.0, np.nan]), truth, step=0) is None


class _SimulatorAgent(OracleAgent):
    """An agent whose model is the simulator itself: a perfect model for the diagnosis."""

    device = torch.device("cpu")

    def predictor(self):
        self.model.begin()
        return self.model.predict


def test_a_perfect_model_ranks_as_the_simulator_and_is_never_fooled() -> None:
    env = make_env(CHEETAH, max_episode_steps=12)
    planner = RandomShooting(-np.ones(6), np.ones(6), horizon=4, num_candidates=32, num_envs=1, seed=0)
    agent = DiagnosingAgent(_SimulatorAgent([env], planner), [env], every=4, candidates=24, seed=1)
    run_episodes([env], agent, 1, lambda k: (env.unwrapped.list_tasks("test")[0], 0), progress=False)
    env.close()
    assert [s.step for s in agent.scores] == [0, 4, 8]
    for s in agent.scores:
        assert s.spearman > 0.999 and abs(s.optimism) < 1e-4 and abs(s.regret) < 1e-4 and abs(s.bias) < 1e-4
        assert s.headroom > 0


@pytest.mark.parametrize("ensemble", [[], ["model.ensemble=2", "planner.particles=2"]], ids=["mb", "pe-ts"])
def test_diagnose_only_observes_the_evaluation(cli, tmp_path: Path, ensemble: list[str]) -> None:
    """Also for PE-TS, whose predictions are sampled: the diagnosis must not move the sampler."""
    run = tmp_path / "run"
    code, _, err = cli("train", "--env", CHEETAH, "--algo", "mb", "--preset", "medium", "--run-dir", run, "--quiet",
                       *[a for s in TINY + ensemble for a in ("--set", s)])  # fmt: skip
    assert code == 0, err
    code, out, err = cli("diagnose", run, "--every", "10", "--candidates", "16", "--schedule", "fixed", "--quiet")
    assert code == 0, err
    diagnosis = json.loads((run / "diagnosis.json").read_text())
    tasks = len(make_env(CHEETAH).unwrapped.test_tasks(False))
    assert diagnosis["summary"]["states"] == 3 * tasks  # steps 0, 10, 20 of each 30-step episode
    assert diagnosis["candidates"] == 16 and diagnosis["horizon"] == 4
    assert all(np.isfinite(s["optimism"]) and -1 <= s["spearman"] <= 1 for s in diagnosis["scores"])
    assert "optimism" in out and "regret" in out
    # A test-time option changes the scoring planner: more candidates per state with --set.
    code, _, err = cli("diagnose", run, "--every", "15", "--schedule", "fixed", "--quiet", "--set",
                       "planner.num_candidates=20", "--output", tmp_path / "d20.json")  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "d20.json").read_text())["candidates"] == 20
    # The controller acts as under `eval` (same seed): the same return, the diagnosis only watched.
    code, _, err = cli("eval", run, "--schedule", "fixed", "--output", tmp_path / "eval.json", "--quiet")
    assert code == 0, err
    assert diagnosis["heldout_return"] == json.loads((tmp_path / "eval.json").read_text())["mean"]


def test_diagnose_needs_a_mujoco_family(cli, one_line_error, tmp_path: Path) -> None:
    run = tmp_path / "pend"
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "mb", "--run-dir", run, "--quiet",
                       *[a for s in TINY for a in ("--set", s)])  # fmt: skip
    assert code == 0, err
    code, _, err = cli("diagnose", run, "--quiet")
    one_line_error(code, err, "the oracle needs a MuJoCo family")
    assert not (run / "diagnosis.json").exists()
