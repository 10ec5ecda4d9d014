"""Faults a user can cause: every one is a one-line error (exit 2) that changes nothing already written.

Two writers on one run, resuming with options, runs stopped before their first checkpoint,
corrupt checkpoints, read-only directories and full disks, bad option values, late checks,
oversized plans and NaN from the environment. (Crash safety under SIGKILL: test_resume.py.)
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import PENDULUM, TINY_RUN, as_sets

TINY = TINY_RUN


def _snapshot(directory: Path) -> dict[str, str]:
    """Digest of every file below ``directory`` (to show that nothing changed)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run (iterations 0 and 1) to copy from."""
    from learn2adapt.cli import main

    run_dir = tmp_path_factory.mktemp("faults") / "run"
    assert (
        main(["train", "--env", PENDULUM, "--run-dir", str(run_dir), "--quiet", *as_sets([*TINY, "iterations=1"])]) == 0
    )
    return run_dir


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    return run_dir


# 1. one writer per run --------------------------------------------------------------------------
HOLD = "import sys, time; from learn2adapt.run.run_dir import RunLock; RunLock(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def _holder(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(cli, one_line_error, run: Path) -> None:
    before = _snapshot(run)
    proc = _holder(run)
    try:
        code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
        one_line_error(code, err, "in use by another run", f"process {proc.pid}")
        assert _snapshot(run) == before
    finally:
        proc.kill()
        proc.wait()
    # the kernel released the killed holder's lock: no stale lock
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    assert code == 0, err


def test_a_second_comparison_on_the_same_output_is_refused(cli, one_line_error, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    proc = _holder(out)
    try:
        code, _, err = cli("compare", "--env", PENDULUM, "--seeds", "1", "--algos", "mb", "--out", out, "--quiet")
        one_line_error(code, err, "in use by another comparison")
        assert not (out / "runs").exists()
    finally:
        proc.kill()
        proc.wait()


# 2. resume with options -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--algo", "grbal"], "--algo cannot be combined with --resume"),
        (["--seed", "7"], "--seed cannot be combined"),
        (["--set", "planner.horizon=3"], "planner.horizon cannot change in the middle of a run"),
        (["--set", "device=tpu"], "error: device 'tpu' is not a torch device"),
    ],
)
def test_resume_refuses_options_that_cannot_change(cli, one_line_error, run: Path, args, needle) -> None:
    before = _snapshot(run)
    code, _, err = cli("train", "--resume", run, "--quiet", *args)
    one_line_error(code, err, needle)
    assert _snapshot(run) == before


def test_resume_extends_a_finished_run(cli, run: Path) -> None:
    from learn2adapt.run.state import load_run

    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    assert code == 0, err
    st = load_run(run)
    assert st.iteration == st.cfg.iterations == 2 and (run / "DONE").exists()


@pytest.mark.parametrize("algo", ["grbal", "mb"])
def test_a_run_extended_by_resume_is_the_run_trained_to_that_length(cli, tmp_path: Path, algo: str) -> None:
    # What the equal-samples study rests on: a run taken to N iterations by `--resume --set
    # iterations=N` is the run trained to N in one go (model, data and training log).
    from learn2adapt.run.state import load_run

    args = ("--env", PENDULUM, "--algo", algo, "--quiet", *as_sets(TINY))
    whole, extended = tmp_path / "whole", tmp_path / "extended"
    assert cli("train", "--run-dir", whole, *args, "--set", "iterations=2")[0] == 0
    assert cli("train", "--run-dir", extended, *args, "--set", "iterations=1")[0] == 0
    code, _, err = cli("train", "--resume", extended, "--quiet", "--set", "iterations=2")
    assert code == 0, err
    a, b = load_run(whole), load_run(extended)
    assert a.iteration == b.iteration == 2
    weights_a, weights_b = _tensors(a.rule.state_dict()), _tensors(b.rule.state_dict())
    assert weights_a.keys() == weights_b.keys() and weights_a
    for name, x in weights_a.items():
        assert torch.equal(x, weights_b[name]), name
    assert len(a.buffer) == len(b.buffer) > 0
    assert _plain(a.buffer.state_dict()) == _plain(b.buffer.state_dict())
    read = [json.loads(json.dumps(_rows(r / "metrics.csv"))) for r in (whole, extended)]
    assert read[0] == read[1]


def _tensors(state: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a nested state dict, by dotted path."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    if isinstance(state, dict):
        return {k: v for key, sub in state.items() for k, v in _tensors(sub, f"{prefix}{key}.").items()}
    return {}


def _plain(state: object) -> object:
    """A nested state with its arrays as lists, to compare with ``==``."""
    if isinstance(state, (np.ndarray, torch.Tensor)):
        return state.tolist()
    if isinstance(state, dict):
        return {k: _plain(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_plain(v) for v in state]
    return state


def _rows(path: Path) -> list[dict[str, object]]:
    """``metrics.csv`` without its wall-clock columns."""
    from learn2adapt.run.metrics_log import MetricsLog

    return [{k: v for k, v in row.items() if "seconds" not in k} for row in MetricsLog.read(path)]


def _as_if_it_ran_on(run: Path, device: str, legacy_digest: bool = False) -> None:
    """Make ``run`` what a machine with ``device`` writes; ``legacy_digest``: and its checkpoint what
    learn2adapt 0.1 wrote there (a configuration digest that counts the device), resuming a run
    whose config.json an earlier version wrote (as if without ``nominal``, which 0.1 knew)."""
    from learn2adapt.run.checkpoint import load_checkpoint, save_checkpoint
    from learn2adapt.run.digest import LEGACY_LEFT_OUT, config_digest

    path = run / "config.json"
    saved = json.loads(path.read_text())
    saved["device"] = device
    if legacy_digest:
        saved.pop("nominal")
    path.write_text(json.dumps(saved, indent=2) + "\n")
    if legacy_digest:
        state = load_checkpoint(run / "checkpoint.pt")
        state["config_digest"] = config_digest({**saved, "nominal": False}, LEGACY_LEFT_OUT)
        assert state["config_digest"] != config_digest(saved)
        save_checkpoint(run / "checkpoint.pt", state)


def _on_device(st, device: str) -> bool:
    """Whether the rule's parameters and its optimiser's state tensors are all on ``device``."""
    tensors = [*st.rule.module.parameters(), *st.rule.module.buffers()]
    opt = st.rule.optimizer
    assert opt is not None and opt.state  # as loaded from the checkpoint
    tensors += [v for s in opt.state.values() for k, v in s.items() if torch.is_tensor(v) and k != "step"]
    return all(t.device == torch.device(device) for t in tensors)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_run_from_a_gpu_resumes_here_only_with_set_device(cli, one_line_error, run: Path) -> None:
    from learn2adapt.run.state import load_run

    _as_if_it_ran_on(run, "cuda")
    before = _snapshot(run)
    for extra in ([], ["--set", "iterations=2"]):
        code, _, err = cli("train", "--resume", run, "--quiet", *extra)
        one_line_error(
            code, err, f"{run} ran on 'cuda', which this machine cannot use",
            f"`learn2adapt train --resume {run} --set device=cpu`",
        )  # fmt: skip
        assert _snapshot(run) == before
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "device=cpu", "--set", "iterations=2")
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())
    assert saved["device"] == "cpu" and saved["iterations"] == 2
    st = load_run(run)
    assert st.iteration == 2 and (run / "DONE").exists() and _on_device(st, "cpu")
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=3")  # now a cpu run
    assert code == 0 and not err, err
    assert load_run(run).iteration == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_comparison_begun_on_a_gpu_goes_on_here(cli, tmp_path: Path) -> None:
    # Its run was stopped after its last checkpoint, before DONE, on a GPU machine: the same
    # compare command here resumes it on the CPU instead of refusing it as another configuration.
    from learn2adapt.run.state import load_run

    out = tmp_path / "cmp"
    args = ("compare", "--env", PENDULUM, "--seeds", "1", "--algos", "mb", "--episodes", "1", "--out", out, "--quiet")
    code, _, err = cli(*args, *as_sets([*TINY, "iterations=1"]))
    assert code == 0, err
    (run,) = (out / "runs").iterdir()
    (run / "DONE").unlink()
    (run / "eval.json").unlink()
    _as_if_it_ran_on(run, "cuda")
    code, _, err = cli(*args, *as_sets([*TINY, "iterations=1"]))
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["device"] == "cpu"
    assert (run / "DONE").exists() and (run / "eval.json").exists() and load_run(run).iteration == 1


@pytest.mark.parametrize("moved", [False, True])
def test_a_checkpoint_whose_digest_counts_the_device_still_resumes(cli, run: Path, moved: bool) -> None:
    # Written by learn2adapt 0.1 on this machine (moved=False) or on a GPU one (config.json says cuda).
    from learn2adapt.run.state import load_run

    moved = moved and not torch.cuda.is_available()
    _as_if_it_ran_on(run, "cuda" if moved else "cpu", legacy_digest=True)
    code, _, err = cli("eval", run, "--quiet", "--episodes", "1")
    assert code == 0, err
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2", *(["--set", "device=cpu"] * moved))
    assert code == 0, err
    assert load_run(run).iteration == 2


def test_a_moved_run_stopped_before_its_next_checkpoint_still_resumes(cli, run: Path, monkeypatch) -> None:
    # config.json is rewritten with the new device before the first iteration: the 0.1 checkpoint
    # kept until then must match it, or the run could no more be resumed.
    from learn2adapt.run.checkpoint import load_checkpoint
    from learn2adapt.run.digest import config_digest
    from learn2adapt.run.state import load_run

    _as_if_it_ran_on(run, "cuda:7", legacy_digest=True)  # moved with --set device=cpu, whatever this machine has
    with monkeypatch.context() as m:
        m.setattr("learn2adapt.run.loop._iterate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        code, _, err = cli("train", "--resume", run, "--quiet", "--set", "device=cpu", "--set", "iterations=2")
    assert code == 130, err
    assert json.loads((run / "config.json").read_text())["device"] == "cpu"
    assert load_checkpoint(run / "checkpoint.pt")["config_digest"] == config_digest(load_run(run).cfg)
    code, _, err = cli("train", "--resume", run, "--quiet")
    assert code == 0, err
    assert load_run(run).iteration == 2


# 3. no dead ends --------------------------------------------------------------------------------
def test_a_run_stopped_before_its_first_checkpoint_starts_again_in_place(cli, one_line_error, run: Path) -> None:
    (run / "checkpoint.pt").unlink()
    (run / "DONE").unlink()
    (run / "metrics.csv").write_text((run / "metrics.csv").read_text().splitlines()[0] + "\n")  # header only
    code, _, err = cli("eval", run, "--quiet")
    one_line_error(code, err, "no checkpoint", "start it again")
    code, out, err = cli("train", "--resume", run, "--quiet")
    assert code == 0, err
    (run / "checkpoint.pt").unlink()
    (run / "config.json").write_text("")  # a full disk while writing it
    code, _, err = cli("eval", run, "--quiet")
    one_line_error(code, err, "config.json is empty", f"--run-dir {run}")
    code, _, err = cli("train", "--env", PENDULUM, "--run-dir", run, "--quiet", *as_sets([*TINY, "iterations=0"]))
    assert code == 0, err
    code, _, err = cli("train", "--env", PENDULUM, "--run-dir", run, "--quiet", *as_sets(TINY))
    one_line_error(code, err, "already holds a run", "--resume")


# 4. integrity -----------------------------------------------------------------------------------
def _rewrite_checkpoint(run: Path, change) -> None:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, run / "checkpoint.pt")


def test_flipped_bytes_in_stored_arrays_are_detected(cli, one_line_error, run: Path) -> None:
    def flip(state):
        state["buffer"]["obs"][3, 0] += 1.0  # the checksum is left as it was

    _rewrite_checkpoint(run, flip)
    for argv in (("eval", run, "--quiet"), ("train", "--resume", run, "--quiet")):
        code, _, err = cli(*argv)
        one_line_error(code, err, "corrupt", "checksum")


@pytest.mark.parametrize("field, value", [("task_id", 99), ("episode_id", 7)])
def test_inconsistent_arrays_are_refused_even_without_a_checksum(cli, one_line_error, run: Path, field, value) -> None:
    def damage(state):
        state.pop("digest")
        state["buffer"][field][5] = value

    _rewrite_checkpoint(run, damage)
    code, _, err = cli("eval", run, "--quiet", "--restamp-checkpoint")  # trusted, re-stamped: still checked
    one_line_error(code, err, "inconsistent")


def test_a_checkpoint_without_its_checksum_is_refused_unless_accepted_once(cli, one_line_error, run: Path) -> None:
    """Issue 40, case 8: the checksum is required; ``--restamp-checkpoint`` accepts a trusted one once."""
    from learn2adapt.run.checkpoint import load_checkpoint

    def unstamped_nan(state):
        state.pop("digest")
        next(v for k, v in state["rule"]["module"].items() if k.endswith("w0"))[0, 0] = float(
            "nan"
        )  # loaded, it would plan

    _rewrite_checkpoint(run, unstamped_nan)
    before = _snapshot(run)
    for argv in (("eval", run, "--quiet"), ("train", "--resume", run, "--quiet", "--set", "iterations=2")):
        code, _, err = cli(*argv)
        one_line_error(code, err, "has no checksum", "--restamp-checkpoint")
        assert _snapshot(run) == before
    _rewrite_checkpoint(run, lambda state: state.pop("digest", None))
    code, out, err = cli("eval", run, "--quiet", "--restamp-checkpoint")
    assert "re-stamped" in out
    load_checkpoint(run / "checkpoint.pt")  # stamped now: loads without the flag


def test_a_checksum_that_does_not_match_is_never_restamped(cli, one_line_error, run: Path) -> None:
    def flip(state):
        state["buffer"]["obs"][3, 0] += 1.0

    _rewrite_checkpoint(run, flip)
    before = _snapshot(run)
    code, _, err = cli("eval", run, "--quiet", "--restamp-checkpoint")
    one_line_error(code, err, "corrupt", "checksum")
    assert _snapshot(run) == before


def test_an_edited_config_is_refused(cli, one_line_error, run: Path) -> None:
    path = run / "config.json"
    path.write_text(path.read_text().replace('"horizon": 4', '"horizon": 5'))
    code, _, err = cli("eval", run, "--quiet")
    one_line_error(code, err, "was edited after the last checkpoint")


@pytest.mark.parametrize("known_to_the_checkpoint", [(), ("nominal",)])
def test_a_run_written_before_an_option_existed_still_loads_and_resumes(
    cli, run: Path, known_to_the_checkpoint
) -> None:
    # As if adaptation.de_select and nominal had been added to learn2adapt after this run's
    # config.json was written (so it lacks both, loaded with their defaults: no edit of the run),
    # and its checkpoint written by a version that knew none of them, or nominal only.
    from learn2adapt.run.checkpoint import load_checkpoint, save_checkpoint
    from learn2adapt.run.digest import config_digest

    path = run / "config.json"
    saved = json.loads(path.read_text())
    saved["adaptation"].pop("de_select")
    saved.pop("nominal")
    path.write_text(json.dumps(saved, indent=2))

    state = load_checkpoint(run / "checkpoint.pt")
    state.pop("digest", None)
    known = {**saved, **{k: False for k in known_to_the_checkpoint}}
    state["config_digest"] = config_digest(known)  # what that version computed: over the config it knew
    save_checkpoint(run / "checkpoint.pt", state)
    code, _, err = cli("eval", run, "--quiet")
    assert code == 0, err
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    assert code == 0, err


# 5. operating-system errors ---------------------------------------------------------------------
def test_a_read_only_run_directory_is_refused_before_any_work(cli, one_line_error, run: Path, monkeypatch) -> None:
    import learn2adapt.run.run_dir as run_dir_module

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    before = _snapshot(run)
    monkeypatch.setattr(run_dir_module.tempfile, "mkstemp", read_only)
    monkeypatch.setattr("learn2adapt.run.loop._iterate", lambda *a, **k: pytest.fail("work started"))
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    one_line_error(code, err, "read-only")
    assert _snapshot(run) == before


def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_temporary_file(
    cli, one_line_error, run: Path, monkeypatch
) -> None:
    import learn2adapt.run.checkpoint as checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    before = (run / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(checkpoint.torch, "save", full)
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    one_line_error(code, err, "no space left", "checkpoint.pt is unchanged")
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_eval_output_in_a_missing_folder_is_created_first(cli, run: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder" / "eval.json"
    code, _, err = cli("eval", run, "--quiet", "--episodes", "1", "--output", out)
    assert code == 0 and out.exists(), err


# 6-8. bad values, late checks, oversized plans --------------------------------------------------
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--set", "fit.lr=nan"], "fit.lr"),
        (["--set", "adaptation.meta_batch=0", "--algo", "grbal"], "adaptation.meta_batch"),
        (["--set", "fit.batch_size=0"], "fit.batch_size"),
        (["--set", "fit.batch_size=-5"], "fit.batch_size"),
        (["--set", "fit.max_epochs=-2"], "fit.max_epochs"),
        (["--set", "fit.patience=-1"], "fit.patience"),
        (["--set", "fit.grad_clip=-1"], "fit.grad_clip"),
        (["--set", "model.hidden="], "model.hidden"),
        (["--set", "eval.episodes_per_task=0"], "eval.episodes_per_task"),
        (["--set", "eval.schedule=switch:t=abc"], "t='abc'"),
        (["--set", "eval.schedule=switch:t=-5"], "must be positive"),
        (["--seed", "-1"], "seed"),
        (["--set", "device=cuda:7"], "device"),
        (["--set", "planner.num_candidates=100000000"], "lower planner.num_candidates"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(cli, one_line_error, tmp_path: Path, argv, needle) -> None:
    code, _, err = cli("train", "--env", PENDULUM, "--run-dir", tmp_path / "r", *argv)
    one_line_error(code, err, needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--episodes", "-3"], "--episodes"),
        (["--episodes", "0"], "--episodes"),
        (["--schedule", "switch:t=abc"], "t='abc'"),
        (["--schedule", "bogus"], "unknown schedule"),
    ],
)
def test_bad_eval_arguments(cli, one_line_error, run: Path, args, needle) -> None:
    code, _, err = cli("eval", run, "--quiet", *args)
    one_line_error(code, err, needle)


def test_a_bad_schedule_stops_a_comparison_before_training(cli, one_line_error, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    code, _, err = cli(
        "compare", "--env", PENDULUM, "--seeds", "1", "--algos", "mb", "--out", out, "--schedule", "bogus"
    )
    one_line_error(code, err, "unknown schedule 'bogus'")
    assert not (out / "runs").exists()


# 9. NaN from the environment --------------------------------------------------------------------
@pytest.mark.parametrize("what", ["observation", "reward"])
def test_nan_from_the_environment_names_it_and_keeps_the_last_checkpoint(
    cli, one_line_error, run: Path, monkeypatch, what
) -> None:
    from learn2adapt.envs.pendulum import PendulumVariedEnv

    step = PendulumVariedEnv.step

    def broken(self, action):
        obs, reward, term, trunc, info = step(self, action)
        if getattr(self, "_l2a_steps", 0) == 7:
            obs, reward = (obs * np.nan, reward) if what == "observation" else (obs, float("nan"))
        self._l2a_steps = getattr(self, "_l2a_steps", 0) + 1
        return obs, reward, term, trunc, info

    monkeypatch.setattr(PendulumVariedEnv, "step", broken)
    before = (run / "checkpoint.pt").read_bytes()
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    one_line_error(code, err, "iteration 2", PENDULUM, "non-finite", "step 7", "iteration 1) is kept")
    assert (run / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("what", ["observation", "reward", "initial observation"])
def test_nan_from_the_environment_during_eval_is_one_line_and_writes_nothing(
    cli, one_line_error, run: Path, monkeypatch, what
) -> None:
    """Issue 40, case 3: ``eval`` refuses NaN from the environment as ``train`` does, rather than
    save "return nan" (a NaN reward) or a finite return (a NaN observation) with exit 0."""
    from learn2adapt.envs.pendulum import PendulumVariedEnv

    step, reset = PendulumVariedEnv.step, PendulumVariedEnv.reset

    def broken_step(self, action):
        obs, reward, term, trunc, info = step(self, action)
        self._l2a_steps = getattr(self, "_l2a_steps", 0) + 1
        if self._l2a_steps == 5 and what != "initial observation":
            obs, reward = (obs * np.nan, reward) if what == "observation" else (obs, float("nan"))
        return obs, reward, term, trunc, info

    def broken_reset(self, **kwargs):
        obs, info = reset(self, **kwargs)
        return (obs * np.nan if what == "initial observation" else obs), info

    monkeypatch.setattr(PendulumVariedEnv, "step", broken_step)
    monkeypatch.setattr(PendulumVariedEnv, "reset", broken_reset)
    before = sorted(p.name for p in run.iterdir())
    with warnings.catch_warnings():  # Gymnasium's checker warns of the NaN first, on stderr
        warnings.simplefilter("ignore")
        code, _, err = cli("eval", run, "--quiet")
    one_line_error(code, err, "eval:", PENDULUM, f"non-finite {what}", "no evaluation was written")
    assert sorted(p.name for p in run.iterdir()) == before and not (run / "eval.json").exists()


# Issue 40: the last defects around training ---------------------------------------------------
def test_eval_waits_for_no_one_and_refuses_a_run_that_train_is_writing(cli, one_line_error, run: Path) -> None:
    """Case 1: ``eval`` takes the run's lock, so it never evaluates (and records) a run mid-write."""
    holder = _holder(run)
    try:
        code, _, err = cli("eval", run, "--quiet")
        one_line_error(code, err, f"{run} is in use by another run")
    finally:
        holder.kill()
        holder.wait()
    assert not (run / "eval.json").exists()
    code, _, err = cli("eval", run, "--quiet")
    assert code == 0, err


def test_a_full_disk_at_the_end_of_eval_prints_the_results_it_could_not_save(
    cli, one_line_error, run: Path, monkeypatch
) -> None:
    """Case 13: the evaluation is not wasted: its results are on the screen above the one line."""
    import learn2adapt.run.run_dir as run_dir_module

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_dir_module.os, "fsync", full)
    code, out, err = cli("eval", run, "--quiet")
    one_line_error(code, err, "no space left on the device", "the results are printed above")
    assert "all test tasks" in out and "return" in out and "saved" not in out
    monkeypatch.undo()
    assert not (run / "eval.json").exists() and not list(run.glob(".*.tmp"))


def test_leftover_temporaries_of_a_killed_write_go_at_the_next_start(cli, run: Path) -> None:
    """Case 5: a kill during an atomic write leaves ``.NAME.*.tmp`` (a full checkpoint copy); the
    next process to hold the run's lock removes them, and only it."""
    leftovers = [run / ".checkpoint.pt.abc123.tmp", run / ".DONE.x.tmp", run / ".config.json.y.tmp"]
    holder = _holder(run)  # while another process holds the lock (and may be writing), nobody touches them
    for path in leftovers:
        path.write_bytes(b"partial")
    try:
        code, _, _ = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
        assert code == 2 and all(p.exists() for p in leftovers)
    finally:
        holder.kill()
        holder.wait()
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    assert code == 0, err
    assert not any(p.exists() for p in leftovers)


TRAIN_LONG = [*TINY, "iterations=50"]


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_sigterm_and_sigint_stop_cleanly_name_the_run_and_resume(tmp_path: Path, sig: str, code: int) -> None:
    """Case 7: SIGTERM (what schedulers send first) is handled like Ctrl-C: exit 143, one line that
    names the run's path (not the literal RUN_DIR), and the run resumes from its last checkpoint."""
    import os
    import signal
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "learn2adapt.cli", "train", "--env", PENDULUM, "--run-dir", str(run), "--quiet"]
    proc = subprocess.Popen(
        [*cmd, *as_sets(TRAIN_LONG)], env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(run) in lines[0] and "RUN_DIR" not in lines[0], err
    assert f"learn2adapt train --resume {run}" in lines[0]
    assert not list(run.glob(".*.tmp")) and not (run / "DONE").exists()
    from learn2adapt.run.state import load_run

    assert load_run(run).iteration >= 0  # the last checkpoint loads


def test_a_finished_run_that_lost_its_checkpoint_keeps_its_results(cli, one_line_error, run: Path) -> None:
    """Issue 40, case 2: the diagnosis is accurate, and a restart moves the old results to a dated
    ``discarded/`` folder (named in its output) instead of deleting them."""
    code, _, err = cli("eval", run, "--quiet")
    assert code == 0, err
    (run / "checkpoint.pt").unlink()
    results = {name: (run / name).read_bytes() for name in ("eval.json", "metrics.csv", "DONE")}
    code, _, err = cli("eval", run, "--quiet")
    one_line_error(code, err, "checkpoint.pt is missing, though the run got further", "DONE", "untouched")
    assert "never finished" not in err and all((run / n).read_bytes() == b for n, b in results.items())
    code, out, err = cli("train", "--resume", run)
    assert code == 0, err
    (kept,) = (run / "discarded").iterdir()
    assert f"moved to {kept}" in out
    assert all((kept / n).read_bytes() == b for n, b in results.items())  # every result, as it was
    assert (kept / "tb").is_dir() and (run / "DONE").exists()


@pytest.mark.parametrize("garbage", [b"", b'{"env": "learn2', b"\xff\xfe\x00binary"])
def test_a_garbled_config_beside_a_checkpoint_is_never_advised_away(cli, one_line_error, run: Path, garbage) -> None:
    """Issue 40, case 10: the advice for a garbled config.json of a trained run keeps the run."""
    good = (run / "config.json").read_bytes()
    (run / "config.json").write_bytes(garbage)
    before = _snapshot(run)
    for argv in (("eval", run, "--quiet"), ("train", "--resume", run, "--quiet")):
        code, _, err = cli(*argv)
        one_line_error(code, err, "holds a checkpoint", "do not delete it", "restore config.json")
        assert "delete " + str(run) not in err and _snapshot(run) == before
    (run / "config.json").write_bytes(good)  # restored: the run is whole again
    code, _, err = cli("eval", run, "--quiet")
    assert code == 0, err


def _tb_steps(run: Path, tag: str = "return_mean") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for events in sorted((run / "tb").glob("events.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        steps += [e.step for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []
    return sorted(steps)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.unlink(),  # lost
        lambda p: p.write_bytes(b"\x00\xff\xfe garbage \x81\n" * 10),  # binary: no UnicodeDecodeError any more
        lambda p: p.write_text(p.read_text() + "".join(p.read_text().splitlines(keepends=True)[1:])),  # doubled
        lambda p: p.write_text("iteration,bogus\n1,2\n" + p.read_text()),  # garbage merged into the header
    ],
    ids=["lost", "binary", "doubled", "garbled-header"],
)
def test_metrics_are_rebuilt_exactly_from_the_checkpoint_on_resume(cli, run: Path, damage) -> None:
    """Issue 40, cases 9 and 6: whatever happened to metrics.csv, a resume rebuilds it from the
    checkpoint's own per-iteration record, then appends the new iterations."""
    original = (run / "metrics.csv").read_text()
    damage(run / "metrics.csv")
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    assert code == 0, err
    rebuilt = (run / "metrics.csv").read_text().splitlines()
    assert rebuilt[: len(original.splitlines())] == original.splitlines()
    assert [line.split(",")[0] for line in rebuilt[1:]] == ["0", "1", "2"]


def test_a_redone_iteration_does_not_repeat_its_tensorboard_scalars(cli, run: Path) -> None:
    """Issue 40, case 12: killed after logging an iteration but before checkpointing it, the run redoes
    that iteration on resume; TensorBoard then holds each step once, not twice."""
    from learn2adapt.run.metrics_log import MetricsLog

    steps_before = _tb_steps(run)
    log = MetricsLog(run)  # as the killed process had: the row of iteration 2 logged, never checkpointed
    log.log({**log.rows[-1], "iteration": 2, "env_steps": 10**6}, 10**6)
    log.close()
    assert _tb_steps(run) == [*steps_before, 10**6]
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    assert code == 0, err
    steps = _tb_steps(run)
    assert len(steps) == len(set(steps)) == 3 and 10**6 not in steps
    assert steps[:2] == steps_before
    assert (run / "discarded").is_dir()  # the old logs are kept aside, not deleted


def test_resuming_a_run_killed_before_its_config_was_written_says_how_to_start_it(cli, one_line_error, tmp_path):
    """Found by the hostile probe: SIGKILL before config.json's first rename leaves only the lock and
    a temporary file; the resume says that no run exists yet and how to start it."""
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text("123\n")
    (run / ".config.json.abc.tmp").write_text("{")
    code, _, err = cli("train", "--resume", run)
    one_line_error(code, err, "holds no run yet", f"learn2adapt train --run-dir {run}")


def test_extending_a_finished_run_sets_its_evaluation_aside(cli, run: Path) -> None:
    """Issue 40, case 1: an evaluation is never reused for a model it was not computed from: a
    finished run trained further moves its old eval.json to discarded/ (compare then re-evaluates)."""
    code, _, err = cli("eval", run, "--quiet")
    assert code == 0, err
    old = (run / "eval.json").read_bytes()
    code, out, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")
    assert code == 0, err
    (kept,) = (run / "discarded").iterdir()
    assert (kept / "eval.json").read_bytes() == old and not (run / "eval.json").exists()
    assert f"moved to {kept}" in out
