"""The Ray runner: comparisons and sweeps on a local Ray instance, retries, placement, runner independence."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import PENDULUM, TINY_RUN, as_sets

ray = pytest.importorskip("ray")

SETS = as_sets([*TINY_RUN, "iterations=1", "eval.episodes_per_task=1"])


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; runners join it instead of starting their own."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job functions below travel by value
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _returns(out: Path) -> dict[str, list[float]]:
    runs = sorted((out / "runs").iterdir())
    return {r.name: [x for t in json.loads((r / "eval.json").read_text())["tasks"] for x in t["returns"]] for r in runs}


def test_compare_and_sweep_on_ray_give_the_numbers_of_the_other_runners(local_ray, cli, tmp_path: Path) -> None:
    common = ["compare", "--env", PENDULUM, "--algos", "mb,grbal", "--seeds", "1", "--quiet", *SETS]
    for runner, extra in (("ray", []), ("process", ["--workers", "2"]), ("local", [])):
        code, _, err = cli(*common, "--out", tmp_path / runner, "--runner", runner, *extra)
        assert code == 0, err
        assert (tmp_path / runner / "report" / "report.md").exists()
    assert _returns(tmp_path / "ray") == _returns(tmp_path / "local") == _returns(tmp_path / "process")
    # A re-run reuses the finished runs.
    code, out, err = cli(*common, "--out", tmp_path / "ray", "--runner", "ray")
    assert code == 0 and "0 runs trained" in (tmp_path / "ray" / "report" / "report.md").read_text(), err

    out_dir = tmp_path / "sweep"
    code, out, err = cli(
        "sweep", "--env", PENDULUM, "--algo", "mb", "--grid", "fit.lr=0.001,0.01", "--grid", "planner.horizon=3,4",
        "--samples", "3", "--seeds", "1", "--out", out_dir, "--runner", "ray", "--quiet", *SETS,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((out_dir / "report" / "sweep.json").read_text())
    assert len(summary["points"]) == 3 and "best point" in out
    assert (out_dir / "report" / "sweep_fit_lr.png").exists() and (out_dir / "report" / "sweep.md").exists()


def test_copy_storage_brings_run_directories_back(local_ray, cli, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    code, _, err = cli(
        "compare", "--env", PENDULUM, "--algos", "mb", "--seeds", "1", "--out", out, "--runner", "ray",
        "--storage", "copy", "--no-checkpoints", "--quiet", *SETS,
    )  # fmt: skip
    assert code == 0, err
    run = out / "runs" / "mb-s0"
    assert (run / "DONE").exists() and (run / "eval.json").exists() and not (run / "checkpoint.pt").exists()


def _dies_once(marker: str) -> int:
    if not os.path.exists(marker):
        Path(marker).write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-job
    return os.getpid()


def _always_fails(x: int) -> int:
    if x == 1:
        raise RuntimeError("bad job")
    return x


def test_a_killed_worker_is_retried_and_a_failure_does_not_stop_the_others(local_ray, tmp_path: Path) -> None:
    from learn2adapt.experiments.runner import JobsFailed, RayRunner

    runner = RayRunner(max_retries=1)
    assert runner.map(_dies_once, [str(tmp_path / "marker")], progress=False)[0] > 0
    assert (tmp_path / "marker").read_text() == "killed"  # the first attempt did die
    with pytest.raises(JobsFailed, match="1 of 3 jobs failed.*bad job"):
        RayRunner(max_retries=0).map(_always_fails, [0, 1, 2], progress=False)


def _node(_: int) -> str:
    import time

    time.sleep(0.5)  # long enough for the jobs to spread over the nodes
    return ray.get_runtime_context().get_node_id()


def test_jobs_are_placed_on_every_node_of_a_cluster() -> None:
    from ray.cluster_utils import Cluster

    from learn2adapt.experiments.runner import RayRunner

    ray.shutdown()  # the module's local instance, if a test before this one started it
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)  # a second node (another raylet, other ports) on this machine
    try:
        runner = RayRunner(address=cluster.address)
        assert runner.workers == 2
        nodes = runner.map(_node, range(4), progress=False)
        runner.close()
        assert len(set(nodes)) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_without_ray_the_error_names_the_install_command(cli, one_line_error, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "mb", "--seeds", "1", "--runner", "ray",
                       "--out", tmp_path / "x", "--quiet", *SETS)  # fmt: skip
    one_line_error(code, err, "--runner ray needs Ray", "pip install")
