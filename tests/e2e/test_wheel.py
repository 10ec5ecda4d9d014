"""A wheel built from the repository works with no clone beside it (package data, presets, assets).

The wheel is installed into a fresh virtual environment; its dependencies (torch, MuJoCo...)
come from the project's environment through a path file, so the test does not download them,
but learn2adapt itself can only come from the wheel: the check asserts where it was imported from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TUTORIAL_PRESETS = """
env = "Hopper-v5"

[quick]
task_space = ["mass:torso=0.5..1.5/1.7..2"]
reward = "learned"
iterations = 0
random_episodes = 2
episode_length = 30
num_envs = 1
model.hidden = [16]
fit.max_epochs = 1
planner.num_candidates = 20
planner.horizon = 3
adaptation.past = 4
adaptation.future = 4
eval.episodes_per_task = 1
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="venv layout")
def test_a_wheel_installs_and_runs_the_tutorial_without_the_clone(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("learn2adapt-*.whl")
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True, timeout=300)
    python = fresh / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # the dependencies of the project's environment, without its editable learn2adapt (a path
    # line adds a directory to sys.path; the editable install's own .pth files there are not read)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    work = tmp_path / "user"  # no clone here, and not the repository's directory
    work.mkdir()
    (work / "hopper.toml").write_text(TUTORIAL_PRESETS)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = _run([str(python), "-c", "import learn2adapt; print(learn2adapt.__file__)"], work, env)
    assert where.strip().startswith(str(site)), where
    cli = str(fresh / "bin" / "learn2adapt")
    listed = _run([cli, "envs"], work, env)
    assert "learn2adapt/HalfCheetahPier-v0" in listed  # its MuJoCo asset ships in the wheel
    options = _run(
        [cli, "options", "--env", "learn2adapt/HalfCheetahDisabledJoint-v0", "--preset", "medium"], work, env
    )
    lengths = [line.split() for line in options.splitlines() if line.split()[:1] == ["episode_length"]]
    assert lengths and lengths[0][1] == "500"  # the presets ship in the wheel (medium: 500-step episodes)
    _run([cli, "train", "--algo", "grbal", "--preset", "hopper.toml", "--run-dir", "run", "--quiet"], work, env)
    evaluated = _run([cli, "eval", "run", "--quiet"], work, env)
    assert '"mass:torso": 1.85' in evaluated
    _run([cli, "record", "--preset", "hopper.toml", "--episodes", "2", "--out", "rec.npz", "--quiet"], work, env)
    _run([cli, "train", "--algo", "grbal", "--preset", "hopper.toml", "--offline", "rec.npz", "--run-dir", "off",
          "--quiet"], work, env)  # fmt: skip
