"""Recorded data: ``learn2adapt record`` and ``train --offline`` (learn2adapt.data.recorded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learn2adapt.data.recorded import ARRAYS, load_recording
from tests.conftest import PENDULUM, TINY_RUN, as_sets

pytestmark = pytest.mark.usefixtures("one_thread")

OFFLINE = [o for o in TINY_RUN if not o.startswith("random_episodes")] + ["eval.episodes_per_task=1"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from learn2adapt.cli import main

    path = tmp_path_factory.mktemp("rec") / "pendulum.npz"
    args = ["record", "--env", PENDULUM, "--episodes", "5", "--out", str(path), "--quiet", "--seed", "3"]
    assert main([*args, *as_sets(["episode_length=40", "num_envs=2"])]) == 0
    return path


def test_a_recording_holds_the_documented_arrays(recording: Path) -> None:
    with np.load(recording, allow_pickle=False) as data:
        assert set(data.files) == {*ARRAYS, "meta"}
        meta = json.loads(str(data["meta"]))
        assert data["obs"].shape == data["next_obs"].shape == (200, 3) and data["act"].shape == (200, 1)
        assert data["episode"].tolist() == [k for k in range(5) for _ in range(40)]
        stamps = data["timestamp"]
        assert np.isfinite(stamps).all() and (stamps >= 0).all()
        assert all((np.diff(stamps[data["episode"] == k]) >= 0).all() for k in range(5))
        assert meta["format"] == "learn2adapt-transitions" and meta["env"] == PENDULUM and meta["policy"] == "random"
        assert len(meta["tasks"]) == 5 and (data["task"] >= 0).all()  # one drawn training task per episode
    rec = load_recording(recording)
    episodes = rec.episodes()
    assert [len(e) for e in episodes] == [40] * 5
    assert np.array_equal(episodes[1].obs[1:], episodes[1].next_obs[:-1])  # consecutive in time


def test_offline_training_steps_no_environment_and_keeps_the_data(
    recording: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import learn2adapt.run.loop as loop

    def no_steps(*args, **kwargs):
        raise AssertionError("an offline run stepped an environment")

    monkeypatch.setattr(loop, "run_episodes", no_steps)
    run = tmp_path / "run"
    options = [*OFFLINE, "iterations=0"]
    code, out, err = cli(
        "train", "--algo", "grbal", "--offline", recording, "--run-dir", run, "--quiet", *as_sets(options)
    )
    assert code == 0, err
    assert "200 environment steps" in out  # the env came from the recording's meta
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    rec = load_recording(recording)
    assert np.array_equal(state["buffer"]["obs"].numpy(), rec.obs)
    assert np.array_equal(state["buffer"]["reward"].numpy(), rec.reward)
    assert state["offline"]["episodes"] == 5 and len(state["offline"]["sha256"]) == 64
    monkeypatch.undo()
    code, _, err = cli("eval", run, "--quiet")  # evaluated in the simulator on held-out tasks
    assert code == 0, err
    assert json.loads((run / "eval.json").read_text())["train_env_steps"] == 200
    # ... and extended online: later iterations collect with MPC as usual
    code, _, err = cli("train", "--resume", run, "--set", "iterations=1", "--quiet")
    assert code == 0, err
    assert torch.load(run / "checkpoint.pt", weights_only=True)["buffer"]["obs"].shape[0] == 240


def test_grbal_needs_no_task_labels(recording: Path, cli, tmp_path: Path) -> None:
    with np.load(recording, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["task"] = np.full_like(arrays["task"], -1)
    meta = json.loads(str(arrays["meta"]))
    meta["tasks"] = []
    arrays["meta"] = np.array(json.dumps(meta))
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, **arrays)
    run = tmp_path / "run"
    code, _, err = cli("train", "--algo", "grbal", "--offline", unlabelled, "--run-dir", run, "--quiet",
                       *as_sets([*OFFLINE, "iterations=0"]))  # fmt: skip
    assert code == 0, err


def test_a_runs_controller_can_be_recorded(recording: Path, cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = cli("train", "--algo", "mb", "--offline", recording, "--run-dir", run, "--quiet",
                       *as_sets([*OFFLINE, "iterations=0"]))  # fmt: skip
    assert code == 0, err
    out = tmp_path / "mpc.npz"
    code, stdout, err = cli("record", "--policy", run, "--episodes", "2", "--split", "test", "--out", out, "--quiet")
    assert code == 0, err
    rec = load_recording(out)
    assert rec.policy == "mb controller (rs)" and rec.num_episodes == 2
    from learn2adapt.envs import make_env

    space = make_env(PENDULUM).unwrapped.param_space
    assert rec.tasks and all(space.split_of(t) == "test" for t in rec.tasks)  # --split test
    assert "recorded 2 episodes" in stdout


def _broken(recording: Path, tmp_path: Path, edit) -> Path:
    with np.load(recording, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    return path


def _set(name, value):
    return lambda a: a.__setitem__(name, value)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda a: a.pop("reward"), "missing reward"),
        (lambda a: a["obs"].__setitem__((7, 1), np.nan), "obs is not finite at transition 7"),
        (lambda a: a["reward"].__setitem__(12, np.inf), "reward is not finite at transition 12"),
        (lambda a: a.__setitem__("act", a["act"][:-3]), "act holds 197 transitions, obs 200"),
        (lambda a: a.__setitem__("act", np.zeros((200, 2), np.float32)), "act has 2 columns; the environment's has 1"),
        (lambda a: [a.__setitem__(k, a[k][:0]) for k in ARRAYS], "zero episodes"),
        (lambda a: a["episode"].__setitem__(slice(40, 80), 3), "episode must count 0, 0, ..., 1, 1"),
        (lambda a: a.__setitem__("meta", np.array("{}")), "meta.format must be 'learn2adapt-transitions'"),
    ],
)
def test_bad_recordings_are_one_line_and_write_nothing(
    recording: Path, cli, one_line_error, tmp_path: Path, edit, needle: str
) -> None:
    path = _broken(recording, tmp_path, edit)
    run = tmp_path / "run"
    code, _, err = cli("train", "--algo", "grbal", "--env", PENDULUM, "--offline", path, "--run-dir", run,
                       *as_sets([*OFFLINE, "iterations=0"]))  # fmt: skip
    one_line_error(code, err, needle)
    assert not run.exists()


def test_a_file_that_is_not_a_recording(cli, one_line_error, tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    code, _, err = cli("train", "--env", PENDULUM, "--offline", junk, "--run-dir", tmp_path / "run")
    one_line_error(code, err, "is not a recording")
    code, _, err = cli("train", "--env", PENDULUM, "--offline", tmp_path / "none.npz", "--run-dir", tmp_path / "run")
    one_line_error(code, err, "no such file")
    assert not (tmp_path / "run").exists()


def _as_minari(recording: Path, root: Path, env_id: str = PENDULUM) -> Path:
    """The recording rewritten as a local Minari dataset (HDF5 storage, its documented layout)."""
    h5py = pytest.importorskip("h5py")
    rec = load_recording(recording)
    data = root / "pendulum-random-v0" / "data"
    data.mkdir(parents=True)
    with h5py.File(data / "main_data.hdf5", "w") as f:
        for k, ep in enumerate(rec.episodes()):
            group = f.create_group(f"episode_{k}")
            group["observations"] = np.concatenate([ep.obs, ep.next_obs[-1:]])
            group["actions"] = ep.act
            group["rewards"] = ep.reward
            group["terminations"] = ep.terminated
            group["truncations"] = np.arange(len(ep)) == len(ep) - 1
    (data / "metadata.json").write_text(json.dumps({"env_spec": json.dumps({"id": env_id})}))
    return data.parent


def test_a_minari_dataset_from_a_local_path_trains_like_a_recording(recording: Path, cli, tmp_path: Path) -> None:
    dataset = _as_minari(recording, tmp_path)
    rec, minari = load_recording(recording), load_recording(dataset)
    for name in ("obs", "act", "next_obs", "reward", "terminated", "episode"):
        assert np.array_equal(getattr(minari, name), getattr(rec, name)), name
    assert minari.env == PENDULUM and (minari.task == -1).all()
    run = tmp_path / "run"
    code, out, err = cli("train", "--algo", "grbal", "--offline", dataset, "--run-dir", run, "--quiet",
                         *as_sets([*OFFLINE, "iterations=0"]))  # fmt: skip
    assert code == 0, err
    assert "200 environment steps" in out  # the env came from the dataset's metadata.json
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert np.array_equal(state["buffer"]["obs"].numpy(), rec.obs)


def test_a_broken_minari_dataset_is_one_line(recording: Path, cli, one_line_error, tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    dataset = _as_minari(recording, tmp_path)
    with h5py.File(dataset / "data" / "main_data.hdf5", "a") as f:
        del f["episode_2"]["rewards"]
    code, _, err = cli("train", "--env", PENDULUM, "--offline", dataset, "--run-dir", tmp_path / "run")
    one_line_error(code, err, "episode_2 has no rewards")
    code, _, err = cli("train", "--env", PENDULUM, "--offline", tmp_path, "--run-dir", tmp_path / "run")
    one_line_error(code, err, "must be a Minari dataset holding data/main_data.hdf5")
    assert not (tmp_path / "run").exists()
