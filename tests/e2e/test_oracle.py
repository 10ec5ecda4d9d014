"""The oracle controller: its simulator model is the environment, and MPC over it controls well."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learn2adapt.envs import make_env
from learn2adapt.evaluation.oracle import SimulatorModel
from tests.conftest import PENDULUM

CHEETAH = "learn2adapt/HalfCheetahDisabledJoint-v0"


@pytest.mark.parametrize("env_id", [CHEETAH, "learn2adapt/AntCrippledLeg-v0", "learn2adapt/HalfCheetahPier-v0"])
def test_the_simulator_model_predicts_what_the_environment_does(env_id: str) -> None:
    env = make_env(env_id)
    env.unwrapped.set_task(env.unwrapped.list_tasks("test")[0])  # a task edit the model must follow
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    model = SimulatorModel([env], threads=1)
    actions = rng.uniform(-1, 1, (3, env.action_space.shape[0])).astype(np.float32)
    # Two candidates: the first takes `actions`, the second all zeros; predicted over 3 steps.
    state = torch.as_tensor(obs).expand(1, 2, -1).contiguous()
    predicted = []
    for t in range(3):
        act = torch.as_tensor(np.stack([actions[t], np.zeros_like(actions[t])]))[None]
        state = model.predict(state, act)
        predicted.append(state[0, 0].numpy())
    assert not np.allclose(state[0, 0].numpy(), state[0, 1].numpy())  # the rows evolve apart
    for t in range(3):  # the real environment, stepped with the first candidate's actions
        real, *_ = env.step(actions[t])
        np.testing.assert_allclose(predicted[t], real, rtol=1e-4, atol=1e-4)
    env.close()


def test_the_simulator_model_restarts_from_the_live_state_at_each_control_step() -> None:
    env = make_env(CHEETAH)
    obs, _ = env.reset(seed=0)
    model = SimulatorModel([env], threads=1)
    act = torch.zeros(1, 1, env.action_space.shape[0])
    start = torch.as_tensor(obs)[None, None].clone()
    first = model.predict(start, act)
    env.step(np.ones(env.action_space.shape[0], np.float32))  # the live state moves on
    model.begin()
    again = model.predict(start, act)  # an unknown tensor: start from the live state
    assert not torch.allclose(first, again)
    cont = model.predict(again, act)  # a tensor it returned: continues from that simulated state
    restart = model.predict(again.clone(), act)  # any other tensor: the live state again
    assert torch.allclose(restart, again) and not torch.allclose(cont, again)
    env.close()


def test_oracle_mpc_beats_random_actions_and_writes_an_eval_file(cli, tmp_path: Path) -> None:
    out = tmp_path / "oracle.json"
    sets = ["eval.episode_length=40", "planner.horizon=5", "planner.num_candidates=64", "num_envs=1"]
    code, stdout, err = cli(
        "oracle", "--env", CHEETAH, "--episodes", "1", "--output", out, "--quiet", "--schedule", "fixed",
        *[a for s in sets for a in ("--set", s)],
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["algo"] == "oracle" and result["schedule"] == "fixed" and result["eval_env_steps"] == 40
    # Random actions on the same held-out task and initial state: the oracle runs forward.
    env = make_env(CHEETAH, max_episode_steps=40)
    env.unwrapped.set_task(env.unwrapped.list_tasks("test")[0])
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    random_return = sum(env.step(rng.uniform(-1, 1, 6).astype(np.float32))[1] for _ in range(40))
    assert result["mean"] > random_return + 5.0, (result["mean"], random_return)


def test_the_oracle_of_a_family_without_mujoco_is_one_line(cli, one_line_error, tmp_path: Path) -> None:
    code, _, err = cli("oracle", "--env", PENDULUM, "--output", tmp_path / "o.json", "--quiet")
    one_line_error(code, err, "the oracle needs a MuJoCo family")


TINY = ["iterations=1", "random_episodes=1", "episodes_per_iteration=1", "episode_length=40", "num_envs=1",
        "model.hidden=16", "fit.max_epochs=1", "planner.horizon=4", "planner.num_candidates=32",
        "eval.episodes_per_task=1", "eval.episode_length=30"]  # fmt: skip


def test_compare_reports_the_oracle_beside_the_runs(cli, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", "--env", CHEETAH, "--preset", "medium", "--algos", "mb", "--seeds", "1", "--out", out,
            "--quiet", "--schedule", "fixed", "--oracle", *[a for s in TINY for a in ("--set", s)]]  # fmt: skip
    code, _, err = cli(*argv)
    assert code == 0, err
    summary = json.loads((out / "report" / "summary.json").read_text())
    bound = summary["oracle"]["fixed"]
    assert bound["return"]["n"] == 1 and bound["gap_to_best"]["algo"] == "mb" and bound["gap_to_best"]["pairs"] == 1
    assert "Oracle (MPC with the simulator" in (out / "report" / "report.md").read_text()
    saved = out / "oracle" / "s0.json"
    stamp = saved.stat().st_mtime_ns
    code, _, err = cli(*argv)  # a second time: the runs and the oracle's evaluation are reused
    assert code == 0, err
    assert saved.stat().st_mtime_ns == stamp


def test_compare_with_the_oracle_on_a_family_without_mujoco_fails_before_training(cli, one_line_error, tmp_path):
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "mb", "--seeds", "1", "--out", tmp_path / "c",
                       "--quiet", "--oracle")  # fmt: skip
    one_line_error(code, err, "the oracle needs a MuJoCo family")
    assert not (tmp_path / "c" / "runs").exists()


def test_the_report_gives_the_forward_velocity_of_locomotion_runs(tmp_path: Path, cli) -> None:
    out = tmp_path / "cmp"
    code, _, err = cli("compare", "--env", CHEETAH, "--preset", "medium", "--algos", "mb", "--seeds", "1", "--out", out,
                       "--quiet", "--schedule", "fixed", *[a for s in TINY for a in ("--set", s)])  # fmt: skip
    assert code == 0, err
    evals = json.loads((out / "runs" / "mb-s0" / "eval.json").read_text())["schedules"]["fixed"]
    velocities = evals["tasks"][0]["velocities"]
    assert len(velocities) == 1 and np.isfinite(velocities[0])
    summary = json.loads((out / "report" / "summary.json").read_text())["fixed"]["mb"]
    assert summary["forward_velocity"]["mean"] == pytest.approx(velocities[0])
    assert "forward velocity (m/s)" in (out / "report" / "report.md").read_text()


@pytest.mark.filterwarnings("ignore:MuJoCo:RuntimeWarning")  # the blow-ups the tests cause
def test_a_diverging_simulation_ends_the_episode_before_its_garbage_state() -> None:
    from learn2adapt.envs.mujoco_base import MAX_SPEED
    from learn2adapt.run.rollout import RandomPolicy, run_episodes

    env = make_env(CHEETAH, max_episode_steps=20)
    base = env.unwrapped
    env.reset(seed=0)
    qvel = base.data.qvel.copy()
    qvel[0] = 10 * MAX_SPEED  # what a blow-up looks like before MuJoCo's own check fires
    base.set_state(base.data.qpos.copy(), qvel)
    obs, reward, terminated, truncated, info = env.step(np.zeros(6, np.float32))
    assert info["diverged"] and terminated and not truncated and reward == 0.0

    class BlowUpAtStep5:  # a policy whose sixth action finds a blow-up
        def __init__(self) -> None:
            self.t, self.random = 0, RandomPolicy(env.action_space, 1, np.random.default_rng(0))

        def reset(self, env_index: int) -> None:
            self.t = 0

        def act(self, obs: np.ndarray) -> np.ndarray:
            self.t += 1
            if self.t == 6:
                q = base.data.qvel.copy()
                q[3] = 1e9
                base.set_state(base.data.qpos.copy(), q)
            return self.random.act(obs)

        def observe(self, *args: object) -> None:
            pass

    with pytest.warns(RuntimeWarning, match="diverged at step 5 of episode 0"):
        (episode,) = run_episodes([env], BlowUpAtStep5(), 1, lambda k: (None, 0), progress=False)
    assert len(episode) == 5 and np.abs(episode.next_obs).max() < MAX_SPEED  # the garbage step is not kept
    env.close()


@pytest.mark.filterwarnings("ignore:MuJoCo:RuntimeWarning")  # the blow-ups the tests cause
def test_the_oracle_ranks_candidates_that_blow_the_simulation_up_last() -> None:
    env = make_env(CHEETAH)
    obs, _ = env.reset(seed=0)
    model = SimulatorModel([env], threads=1)
    state = torch.as_tensor(obs)[None, None].expand(1, 2, -1).contiguous()
    first = model.predict(state, torch.zeros(1, 2, 6))
    states = model._states[id(first)][1]
    states[1, 1 + env.unwrapped.model.nq] = 1e9  # candidate 1's simulated state has blown up
    nxt = model.predict(first, torch.zeros(1, 2, 6))
    assert torch.isfinite(nxt[0, 0]).all() and torch.isnan(nxt[0, 1]).all()
    again = model.predict(nxt, torch.zeros(1, 2, 6))  # it restarted from a sane state: no flood of MuJoCo warnings
    assert torch.isfinite(again[0, 0]).all()
    env.close()
