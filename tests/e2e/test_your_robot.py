"""A user's own robot without editing the library: any Gymnasium id, a task space in a preset file,
a user reward, and a plugin package found through its entry point (docs/your-robot.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import as_sets

pytestmark = pytest.mark.usefixtures("one_thread")

#: A tiny MuJoCo run (tests add the algorithm).
TINY_HOPPER = [
    "iterations=1",
    "random_episodes=2",
    "episodes_per_iteration=1",
    "episode_length=30",
    "num_envs=1",
    "model.hidden=16",
    "fit.max_epochs=1",
    "planner.horizon=4",
    "planner.num_candidates=30",
    "adaptation.past=8",
    "adaptation.future=8",
    "eval.episodes_per_task=1",
]

HOPPER_REWARD = '''
import torch

def reward(obs, act, next_obs):
    """Gymnasium Hopper-v5's reward from observations: x-velocity (obs[5]) + 1 alive - 1e-3 |a|^2."""
    return next_obs[..., 5] + 1.0 - 1e-3 * (act ** 2).sum(-1)

def termination(obs, act, next_obs):
    return (next_obs[..., 0] < 0.7) | (next_obs[..., 1].abs() > 0.2)

def wrong_shape(obs, act, next_obs):
    return next_obs
'''

HOPPER_PRESETS = """
env = "Hopper-v5"

[quick]
task_space = ["mass:torso=0.5..1.5/1.7..2", "gear:foot_joint=1/0.3"]
reward = "my_hopper:reward"
termination = "my_hopper:termination"
"""


@pytest.fixture
def robot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's directory: a reward module on the path and a preset file."""
    (tmp_path / "my_hopper.py").write_text(HOPPER_REWARD)
    (tmp_path / "hopper.toml").write_text(HOPPER_PRESETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_any_gymnasium_mujoco_id_trains_and_evaluates_with_a_preset_file(
    robot: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    run = robot / "run"
    code, _, err = cli("train", "--algo", "grbal", "--preset", robot / "hopper.toml", "--run-dir", run, "--quiet",
                       *as_sets(TINY_HOPPER))  # fmt: skip
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env"] == "Hopper-v5" and cfg["reward"] == "my_hopper:reward"
    assert cfg["task_space"] == ["mass:torso=0.5..1.5/1.7..2", "gear:foot_joint=1/0.3"]
    code, out, err = cli("eval", run, "--schedule", "switch:t=10", "--quiet")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    assert result["schedule"] == "switch:t=10" and result["env"] == "Hopper-v5"
    assert [t["task"] for t in result["tasks"]] == [{"mass:torso": 1.85, "gear:foot_joint": 0.3}]
    assert '"mass:torso": 1.85' in out


def test_envs_describes_a_generic_id_under_its_task_space(robot: Path, cli, one_line_error) -> None:
    """`learn2adapt envs --preset FILE.toml` lists the tasks a preset's task space makes, as for a
    family; with no task space, the nominal task alone; a wrong name is one line."""
    code, out, err = cli("envs", "--preset", robot / "hopper.toml")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Hopper-v5  obs 11  act 3" and "task space mass:torso=0.5..1.5/1.7..2" in lines[1]
    train = next(line for line in lines if line.strip().startswith("train"))
    assert '"mass:torso"' in train and '"gear:foot_joint": 1.0' in train
    code, out, err = cli("envs", "--env", "Hopper-v5")
    assert code == 0, err
    assert "nominal task alone" in out and "train: {}" in out
    code, _, err = cli("envs", "--env", "Hopper-v5", "--set", "task_space=mass:nosuch=0.5/1.5")
    one_line_error(code, err, "no body matching 'nosuch'", "torso")


@pytest.mark.parametrize("reward", [["reward=my_hopper:reward"], ["reward=learned", "termination=learned"]])
def test_an_environment_without_tasks_runs_on_its_nominal_task(robot: Path, cli, reward: list[str]) -> None:
    run = robot / "nominal"
    code, _, err = cli("train", "--algo", "mb", "--env", "Hopper-v5", "--run-dir", run, "--quiet",
                       *as_sets([*TINY_HOPPER, *reward]))  # fmt: skip
    assert code == 0, err
    code, out, err = cli("eval", run, "--quiet")
    assert code == 0, err
    assert "{}" in out  # the one task: the nominal one


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        ([], ("Hopper-v5 has no batched reward", "reward=module:function")),
        (["reward=my_hopper:nothing"], ("module 'my_hopper' has no 'nothing'",)),
        (["reward=not_a_module_x:reward"], ("cannot import 'not_a_module_x'",)),
        (["reward=my_hopper:wrong_shape"], ("must return a torch tensor of shape (...,)", "(2, 3, 11)")),
        (["reward=my_hopper:reward", "task_space=mass:tors=1/2"], ("its bodies: world, torso, thigh, leg, foot",)),
    ],
)
def test_bad_environment_options_are_one_line_and_write_nothing(
    robot: Path, cli, one_line_error, options: list[str], needles: tuple[str, ...]
) -> None:
    run = robot / "bad"
    code, _, err = cli("train", "--algo", "grbal", "--env", "Hopper-v5", "--run-dir", run, *as_sets(options))
    one_line_error(code, err, *needles)
    assert not run.exists()


def test_family_options_are_refused_on_a_family(cli, one_line_error, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = cli("train", "--env", "learn2adapt/PendulumVaried-v0", "--run-dir", run, "--set", "reward=m:f")
    one_line_error(code, err, "reward is for Gymnasium environments without learn2adapt's tasks")
    assert not run.exists()


def test_an_unknown_id_gets_a_suggestion(cli, one_line_error, tmp_path: Path) -> None:
    code, _, err = cli("train", "--env", "Hoper-v5", "--run-dir", tmp_path / "run")
    one_line_error(code, err, "did you mean Hopper-v5")


# --- a plugin package, installed (a dist-info with its entry point on the path) ------------------------
PLUGIN = '''
"""A point mass pushed towards x = 1; its mass is the task (a user's own TaskEnv)."""
import gymnasium as gym
import numpy as np
import torch

from learn2adapt.envs import Family, TaskEnv

DT = 0.1


class PointMass(TaskEnv, gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.set_task(self.nominal_task())

    def sample_task(self, split, rng):
        return {"mass": float(rng.uniform(0.5, 1.5) if split == "train" else rng.uniform(2.0, 3.0))}

    def list_tasks(self, split):
        return [{"mass": m} for m in ((0.5, 1.0, 1.5) if split == "train" else (2.5,))]

    def nominal_task(self):
        return {"mass": 1.0}

    def set_task(self, task):
        self.task = dict(task)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.uniform(-0.1, 0.1, 2).astype(np.float32)
        return self.state.copy(), {"task": dict(self.task)}

    def step(self, action):
        x, v = self.state
        v = v + float(np.clip(action[0], -1, 1)) / self.task["mass"] * DT
        self.state = np.array([x + v * DT, v], dtype=np.float32)
        obs = self.state.copy()
        return obs, float(-(obs[0] - 1.0) ** 2), False, False, {"task": dict(self.task)}

    def reward_fn(self, obs, act, next_obs):
        return -((next_obs[..., 0] - 1.0) ** 2)


FAMILY = Family(
    "robot_plugin/PointMass-v0", "robot_plugin:PointMass", 50, "a point mass of unknown mass",
    presets="robot_plugin:presets.toml",
)
'''

PLUGIN_PRESETS = """
env = "robot_plugin/PointMass-v0"

# quick, on 30-step episodes
[quick]
episode_length = 30
"""


def test_a_plugin_package_is_listed_and_trains(tmp_path: Path) -> None:
    site = tmp_path / "site"
    package = site / "robot_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN)
    (package / "presets.toml").write_text(PLUGIN_PRESETS)
    info = site / "robot_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: robot-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[learn2adapt.envs]\npoint_mass = robot_plugin:FAMILY\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "learn2adapt.cli"]

    listed = subprocess.run([*cmd, "envs"], env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "robot_plugin/PointMass-v0  obs 2  act 1" in listed.stdout
    assert '{"mass": 2.5}' in listed.stdout

    run = tmp_path / "run"
    small = ["iterations=1", "random_episodes=2", "episodes_per_iteration=1", "num_envs=1", "model.hidden=16",
             "fit.max_epochs=1", "planner.num_candidates=30", "planner.horizon=4", "adaptation.past=8",
             "adaptation.future=8", "eval.episodes_per_task=1"]  # fmt: skip
    trained = subprocess.run(
        [*cmd, "train", "--algo", "grbal", "--env", "robot_plugin/PointMass-v0", "--run-dir", str(run), "--quiet",
         *as_sets(small)], env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert json.loads((run / "config.json").read_text())["episode_length"] == 30  # the plugin's preset file
    evaluated = subprocess.run(
        [*cmd, "eval", str(run), "--quiet"], env=env, capture_output=True, text=True, timeout=300
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert '{"mass": 2.5}' in evaluated.stdout
