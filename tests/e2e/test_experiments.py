"""Experiments: statistics, recovery curves, runners, and the report of a tiny `compare`."""

import json
import math

import numpy as np
import pytest

from learn2adapt.cli import main
from learn2adapt.data.trajectory_buffer import Episode
from learn2adapt.evaluation.protocol import recovery_curve, switch_steps
from learn2adapt.evaluation.statistics import diff_ci95, mean_ci95, relative_change
from learn2adapt.experiments.runner import LocalRunner
from learn2adapt.provenance import code_version
from learn2adapt.reporting.plots import PLOTS
from tests.conftest import PENDULUM

ALGOS = ("grbal", "rebal", "mb", "mbde")
TINY = [
    "iterations=1",
    "random_episodes=2",
    "episodes_per_iteration=1",
    "episode_length=40",
    "num_envs=1",
    "model.hidden=32",
    "fit.max_epochs=2",
    "planner.horizon=4",
    "planner.num_candidates=32",
    "adaptation.past=6",
    "adaptation.future=6",
    "eval.episodes_per_task=1",
    "eval.episode_length=30",
]


def _episode(rewards, tasks):
    t = len(rewards)
    z = np.zeros((t, 2), np.float32)
    return Episode(z, z[:, :1], z, np.asarray(rewards, np.float32), np.zeros(t, bool), tasks)


def test_confidence_intervals():
    m, h = mean_ci95([1.0, 2.0, 3.0])
    assert m == 2.0 and h == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    assert mean_ci95([5.0]) == (5.0, 0.0)
    assert mean_ci95(list(range(41)))[1] == pytest.approx(2.021 * np.std(range(41), ddof=1) / math.sqrt(41), rel=1e-3)
    d, h = diff_ci95([10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    assert d == pytest.approx(9.0) and 0 < h < 9.0
    assert math.isnan(diff_ci95([1.0], [2.0, 3.0])[1])


def test_relative_change_is_omitted_against_a_baseline_near_zero():
    assert relative_change(425.3, -905.0) == "+47%"  # the sign follows the difference, not the baseline
    assert relative_change(-10.0, 40.0) == "-25%"
    assert relative_change(-0.39, 199.6) == "-0.2%"  # below 1%: one decimal, never "-0%"
    assert relative_change(77.5, 0.6) == "baseline near 0, no percentage"
    assert relative_change(1.0, 0.0) == relative_change(0.0, 0.0) == "baseline near 0, no percentage"
    assert relative_change(float("nan"), 1.0) == "n/a"


def test_recovery_curve_aligns_rewards_on_switches():
    a, b = {"m": 1}, {"m": 2}
    ep = _episode([1, 1, 1, 0, 0.5, 1], [a, a, a, b, b, b])
    assert switch_steps(ep) == [3]
    rec = recovery_curve([ep, _episode([1, 0, 1], [a, b, b])])
    assert rec.switches == 2
    assert rec.reward == [0.0, 0.75, 1.0] and rec.count == [2, 2, 1]
    assert rec.pre_switch_reward == pytest.approx(1.0)
    assert recovery_curve([_episode([1, 2], [a, a])]) is None


def test_runners_return_results_in_order():
    # (ProcessPoolRunner runs the tiny comparison below.)
    assert LocalRunner().map(abs, [-1, 2, -3], progress=False) == [1, 2, 3]
    with pytest.raises(TypeError):
        LocalRunner().map(abs, ["x"], progress=False)


@pytest.fixture(scope="module")
def tiny_compare(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "out"
    argv = [
        "compare",
        "--env",
        PENDULUM,
        "--algos",
        ",".join(ALGOS),
        "--seeds",
        "2",
        "--out",
        str(out),
        "--quiet",
        "--schedule",
        "fixed",
        "--schedule",
        "switch:t=15",
        "--workers",
        "2",
    ]
    for item in [*TINY, "adaptation.rnn_hidden=16"]:  # ReBAL, one of ALGOS, reads it
        argv += ["--set", item]
    assert main(argv) == 0
    return out, argv


def test_compare_report_has_every_algorithm_and_plot(tiny_compare, capsys):
    out, _ = tiny_compare
    report = (out / "report" / "report.md").read_text()
    for name in ("GrBAL", "ReBAL", "MB", "MB+DE"):
        assert f"| {name} |" in report, name
    for plot in PLOTS:
        assert (out / "report" / plot).stat().st_size > 1000, plot
        assert f"]({plot})" in report, plot
    assert "best is" in report and "95% CI of the difference" in report
    assert f"Command: `learn2adapt compare --env {PENDULUM} --preset quick --algos " in report
    assert "--schedule fixed --schedule switch:t=15" in report and f"--out {out}`" in report
    assert report.count("| 0 | ") >= 1 and "MB+DE's test-time step, chosen after the last fit" in report
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert set(summary["fixed"]) == set(ALGOS) and set(summary["switch:t=15"]) == set(ALGOS)
    for algo in ALGOS:
        assert len(summary["fixed"][algo]["seed_means"]) == 2
        assert summary["switch:t=15"][algo]["early_recovery"]["n"] == 2  # the switch was seen
    # MB does not adapt: its error is the same before and after.
    mb = summary["fixed"]["mb"]
    assert mb["pred_error_before"]["mean"] == pytest.approx(mb["pred_error_after"]["mean"])


def test_compare_again_reuses_finished_runs(tiny_compare, capsys):
    out, argv = tiny_compare
    stamp = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoint.pt")}
    assert main(argv) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())
    runs = json.loads((out / "compare.json").read_text())["runs"]
    assert not any(r["trained"] or r["evaluated"] for r in runs)


def test_compare_evaluates_again_what_other_code_evaluated(tiny_compare, capsys):
    out, argv = tiny_compare
    run = out / "runs" / "mb-s1"
    data = json.loads((run / "eval.json").read_text())
    for result in [data, *data["schedules"].values()]:
        result["code"] = "0.0.1+0123456789ab"  # as if written by an older version
    (run / "eval.json").write_text(json.dumps(data))

    assert main(argv + ["--reuse-stale-evaluations"]) == 0  # kept, and the report says so
    assert not any(r["evaluated"] for r in json.loads((out / "compare.json").read_text())["runs"])
    report = (out / "report" / "report.md").read_text()
    assert "**Evaluations by 2 versions of the code**" in report and "`0.0.1+0123456789ab`: `mb-s1`" in report

    assert main(argv) == 0  # by default that run alone is evaluated again; the old file is kept
    runs = json.loads((out / "compare.json").read_text())["runs"]
    assert [r["run_dir"] for r in runs if r["evaluated"]] == [str(run)]
    kept = json.loads((run / "eval-0.0.1+0123456789ab.json").read_text())
    assert kept == data
    fresh = json.loads((run / "eval.json").read_text())
    assert fresh["code"] == code_version()
    for spec, result in fresh["schedules"].items():  # same code path, same seeds: the same episodes
        assert [t["returns"] for t in result["tasks"]] == [t["returns"] for t in data["schedules"][spec]["tasks"]]
    assert f"Every evaluation by learn2adapt `{code_version()}`." in (out / "report" / "report.md").read_text()


def test_compare_refuses_a_changed_config_in_the_same_directory(tiny_compare, capsys):
    out, argv = tiny_compare
    code = main(argv + ["--set", "fit.max_epochs=3"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another configuration" in err


def test_compare_extends_a_shorter_run_and_sets_its_old_evaluation_aside(tmp_path, capsys):
    """More ``iterations`` on the same ``--out`` resume the finished run (``train --resume --set
    iterations=N``) rather than refuse or retrain it; its evaluation of the shorter run is moved to
    ``discarded/``, never reused for the longer one. Fewer iterations stay refused."""
    out = tmp_path / "out"
    argv = ["compare", "--env", PENDULUM, "--algos", "mb", "--seeds", "1", "--out", str(out), "--quiet"]
    argv += [a for item in TINY for a in ("--set", item)]
    assert main(argv) == 0
    run = out / "runs" / "mb-s0"
    first = json.loads((run / "eval.json").read_text())
    rows = (run / "metrics.csv").read_text().splitlines()
    capsys.readouterr()
    assert main(argv + ["--set", "iterations=2"]) == 0
    printed = capsys.readouterr().out
    assert f"extending the run in {run} to iterations=2" in printed
    (moved,) = (run / "discarded").iterdir()
    assert json.loads((moved / "eval.json").read_text()) == first and str(moved) in printed
    longer = json.loads((run / "eval.json").read_text())
    assert longer["train_env_steps"] == first["train_env_steps"] + 40  # one more iteration of one episode
    extended = (run / "metrics.csv").read_text().splitlines()
    assert extended[: len(rows)] == rows and len(extended) == len(rows) + 1  # nothing retrained
    assert json.loads((run / "config.json").read_text())["iterations"] == 2
    assert main(argv + ["--set", "iterations=2"]) == 0  # now complete: reused as it is
    assert len(list((run / "discarded").iterdir())) == 1
    code = main(argv)  # iterations=1 again: a shorter run cannot be made from a longer one
    assert code == 2 and "another configuration (iterations: 2 -> 1)" in capsys.readouterr().err


def test_compare_never_reuses_an_evaluation_of_an_earlier_checkpoint(tmp_path, capsys):
    """Issue 40, case 1: an eval.json whose recorded training steps or checkpoint are not the
    finished run's (an `eval` of a killed run, then resumed) is evaluated again; the old file is
    kept beside it."""
    out = tmp_path / "out"
    argv = ["compare", "--env", PENDULUM, "--algos", "mb", "--seeds", "1", "--out", str(out), "--quiet"]
    argv += [a for item in TINY for a in ("--set", item)]
    assert main(argv) == 0
    run = out / "runs" / "mb-s0"
    data = json.loads((run / "eval.json").read_text())
    steps = data["train_env_steps"]
    for result in [data, *data["schedules"].values()]:
        result["train_env_steps"] = 80  # as if evaluated after iteration 0
    (run / "eval.json").write_text(json.dumps(data))
    assert main(argv) == 0
    runs = json.loads((out / "compare.json").read_text())["runs"]
    assert [r["evaluated"] for r in runs] == [True]
    assert json.loads((run / "eval.json").read_text())["train_env_steps"] == steps
    (kept,) = [p for p in run.glob("eval-*.json")]
    assert json.loads(kept.read_text())["train_env_steps"] == 80
    assert main(argv) == 0  # now current: reused
    assert not any(r["evaluated"] for r in json.loads((out / "compare.json").read_text())["runs"])
    # The same steps but another checkpoint (a run trained again to the same length): evaluated again.
    data = json.loads((run / "eval.json").read_text())
    done = json.loads((run / "DONE").read_text())
    assert data["checkpoint"] == done["checkpoint"] and len(done["checkpoint"]) == 64
    for result in [data, *data["schedules"].values()]:
        result["checkpoint"] = "0" * 64
    (run / "eval.json").write_text(json.dumps(data))
    assert main(argv) == 0
    assert [r["evaluated"] for r in json.loads((out / "compare.json").read_text())["runs"]] == [True]
    assert json.loads((run / "eval.json").read_text())["checkpoint"] == done["checkpoint"]


def test_video_of_a_numpy_env_is_drawn(tiny_compare, tmp_path, capsys):
    out, _ = tiny_compare
    gif = tmp_path / "ep.gif"
    assert (
        main(
            [
                "video",
                str(out / "runs" / "grbal-s0"),
                "--out",
                str(gif),
                "--steps",
                "12",
                "--quiet",
                "--schedule",
                "switch:t=6",
            ]
        )
        == 0
    )
    import imageio.v2 as imageio

    frames = imageio.mimread(gif)
    assert len(frames) == 13  # the reset frame and one per step
    code = main(["video", str(out / "runs" / "grbal-s0"), "--out", str(tmp_path / "x.avi")])
    assert code == 2 and "format" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("algo", "expected"),
    [("ppo", "[ppo seed 0] checkpoint 1: 2048/440000 env steps"), ("mb", "[mb seed 0] iteration 1/3: 2048 env steps")],
)
def test_worker_progress_lines_count_what_the_run_counts(tmp_path, capsys, algo, expected):
    from learn2adapt.experiments.execution import _IterationPrinter

    (tmp_path / "metrics.csv").write_text("iteration,env_steps,return_mean,wall_seconds\n1,2048,-5.0,3.0\n")
    config = {"algo": algo, "iterations": 3, "baseline": {"steps": 440000}}
    _IterationPrinter(tmp_path, f"[{algo} seed 0]", config).poll()
    assert capsys.readouterr().out.startswith(expected + ", training return -5.0")


def _fake_comparison(path, env, returns):
    """A `compare` output as `aggregate` reads it: compare.json and report/summary.json."""
    (path / "report").mkdir(parents=True)
    (path / "compare.json").write_text(json.dumps({"env": env}))
    summary = {"fixed": {algo: {"seed_means": values} for algo, values in returns.items()}}
    (path / "report" / "summary.json").write_text(json.dumps(summary))
    return path


def test_aggregate_over_domains_ranks_by_normalised_iqm(cli, tmp_path):
    pytest.importorskip("rliable")
    a = _fake_comparison(tmp_path / "a", "A-v0", {"grbal": [50.0, 60.0, 55.0], "mb": [0.0, 10.0, 5.0], "ppo": [1.0]})
    b = _fake_comparison(tmp_path / "b", "B-v0", {"grbal": [-100.0, -90.0, -95.0], "mb": [-400.0, -380.0, -390.0]})
    code, out, err = cli("aggregate", a, b, "--out", tmp_path / "agg")
    assert code == 0, err
    result = json.loads((tmp_path / "agg" / "aggregate.json").read_text())
    grbal, mb = result["algorithms"]["grbal"], result["algorithms"]["mb"]
    # Per domain, the best run scores 1 and the worst 0, whatever the return scale.
    assert result["domains"][1]["returns"]["mb"] == [-400.0, -380.0, -390.0]
    assert 0.8 <= grbal["IQM"]["value"] <= 1.0 and 0.0 <= mb["IQM"]["value"] <= 0.2
    for row in (grbal, mb):
        low, high = row["IQM"]["ci95"]
        assert low <= row["IQM"]["value"] <= high and row["runs"] == 3
    assert result["left_out"] == ["ppo"]  # not run in every domain
    md = (tmp_path / "agg" / "aggregate.md").read_text()
    assert md.index("| GrBAL |") < md.index("| MB |") and "left out: PPO" in md
    assert (tmp_path / "agg" / "performance_profile.png").stat().st_size > 1000


def test_aggregate_of_a_directory_without_a_comparison_is_one_line(cli, one_line_error, tmp_path):
    code, _, err = cli("aggregate", tmp_path, "--out", tmp_path / "agg")
    one_line_error(code, err, "holds no finished comparison")


def test_claims_of_a_comparison_pair_returns_by_episode_and_errors_by_seed(tiny_compare, cli, tmp_path):
    out, _ = tiny_compare
    summary = json.loads((out / "report" / "summary.json").read_text())
    grbal = summary["switch:t=15"]["grbal"]
    assert len(grbal["episodes"]) == grbal["return"]["n"] and len(grbal["per_seed"]["early_recovery"]) == 2
    code, _, err = cli("claims", out, "--out", tmp_path / "claims")
    assert code == 0, err
    checks = json.loads((tmp_path / "claims" / "claims.json").read_text())
    measured = {(c["claim"], c["schedule"], c["comparison"].split(":")[0]): c for c in checks}
    for claim, schedule, comparison in [(1, "fixed", "GrBAL - MB"), (2, "switch:t=15", "ReBAL - MB+DE"),
                                        (3, "fixed", "ReBAL"), (4, "switch:t=15", "GrBAL - MB")]:  # fmt: skip
        c = measured[(claim, schedule, comparison)]
        assert c["pairs"] == (grbal["return"]["n"] if claim < 3 else 2), c
        assert c["verdict"] in ("supports", "contradicts", "within noise"), c
    assert not any(c["claim"] == 4 and c["schedule"] == "fixed" for c in checks)  # no switch there
    assert "## 4. adaptation helps most" in (tmp_path / "claims" / "claims.md").read_text()


def test_compare_puts_ensemble_versions_beside_the_deterministic_models(cli, tmp_path):
    out = tmp_path / "pe"
    sets = [x for item in TINY for x in ("--set", item)]
    variant = ["--variant", "pe:model.ensemble=2", "--variant", "pe:planner.particles=3"]
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "mb,mb+pe,grbal+pe", "--seeds", "1",
                       "--schedule", "fixed", "--out", out, "--quiet", *variant, *sets)  # fmt: skip
    assert code == 0, err
    config = {name: json.loads((out / "runs" / f"{name}-s0" / "config.json").read_text()) for name in ("mb", "mb+pe")}
    assert (config["mb"]["model"]["ensemble"], config["mb"]["planner"]["particles"]) == (1, 1)
    assert (config["mb+pe"]["model"]["ensemble"], config["mb+pe"]["planner"]["particles"]) == (2, 3)
    assert config["mb+pe"]["algo"] == "mb"
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert set(summary["fixed"]) == {"mb", "mb+pe", "grbal+pe"}
    report = (out / "report" / "report.md").read_text()
    assert "| PE-TS |" in report and "| PE-TS + GrBAL |" in report and "| MB |" in report
    after = report.split("One factor at a time", 1)[1].splitlines()[1:]
    one_factor = [line for line in after[:3] if line.startswith("  - ")]
    assert len(one_factor) == 2  # PE-TS against MB, PE-TS + GrBAL against PE-TS
    assert one_factor[0].startswith("  - PE-TS ") and one_factor[0].split(" on held-out")[0].endswith(" MB")
    assert one_factor[1].startswith("  - PE-TS + GrBAL ") and "paired over" in one_factor[1]
    assert (
        "--algos mb,mb+pe,grbal+pe --seeds 1 --variant pe:model.ensemble=2 --variant pe:planner.particles=3" in report
    )
    # `fixed` alone switches nothing: no recovery plot, and no section pointing at one.
    assert not (out / "report" / "recovery.png").exists() and "recovery.png" not in report
    assert "](prediction_error.png)" in report


def test_compare_with_an_unknown_variant_fails_before_training(cli, one_line_error, tmp_path):
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "mb,grbal+big", "--out", tmp_path / "x", "--quiet")
    one_line_error(code, err, "unknown variant 'big'", "--variant big:KEY=VALUE")
    assert not (tmp_path / "x").exists()


def test_compare_evaluates_each_run_with_every_planner_as_a_separate_eval_would(cli, tmp_path):
    out = tmp_path / "planners"
    sets = [x for item in TINY for x in ("--set", item)]
    argv = ("compare", "--env", PENDULUM, "--algos", "grbal,mb", "--seeds", "1", "--schedule", "fixed",
            "--out", out, "--quiet", "--eval-planners", "rs,cem", "--sample-efficiency", *sets)  # fmt: skip
    code, _, err = cli(*argv)
    assert code == 0, err
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert set(summary["fixed"]) == {"grbal@rs", "grbal@cem", "mb@rs", "mb@cem"}
    run = out / "runs" / "grbal-s0"
    assert json.loads((run / "config.json").read_text())["planner"]["name"] == "rs"  # trained with the preset's
    for planner in ("rs", "cem"):
        alone = tmp_path / f"alone-{planner}.json"
        code, _, err = cli("eval", run, "--schedule", "fixed", "--set", f"planner.name={planner}", "--output", alone,
                           "--quiet")  # fmt: skip
        assert code == 0, err
        separate = [x for t in json.loads(alone.read_text())["tasks"] for x in t["returns"]]
        column = [e[-1] for e in summary["fixed"][f"grbal@{planner}"]["episodes"]]
        assert column == separate
    assert summary["fixed"]["grbal@cem"]["episodes"] != summary["fixed"]["grbal@rs"]["episodes"]
    report = (out / "report" / "report.md").read_text()
    assert "| GrBAL (CEM) |" in report and "CEM - RS (paired)" in report and "| GrBAL | " in report
    assert "--eval-planners rs,cem" in report
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "heldout_return" in header and "heldout_return@cem" in header
    # Run again: every planner's evaluation is reused, nothing is evaluated again.
    code, printed, err = cli(*[a for a in argv if a != "--quiet"])
    assert code == 0, err
    assert "evaluating" not in printed and "training" not in printed


def test_eval_planners_without_effect_or_unknown_are_refused_before_anything_runs(cli, one_line_error, tmp_path):
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "mb", "--eval-planners", "rs,annealing",
                       "--out", tmp_path / "a", "--quiet")  # fmt: skip
    one_line_error(code, err, "unknown planner 'annealing'", "rs, cem")
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "sac", "--eval-planners", "cem",
                       "--out", tmp_path / "b", "--quiet")  # fmt: skip
    one_line_error(code, err, "--eval-planners", "model-free")
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "mb", "--eval-planners", "cem,CEM",
                       "--out", tmp_path / "c", "--quiet")  # fmt: skip
    one_line_error(code, err, "twice")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_compare_at_steps_evaluates_each_run_where_its_training_first_reaches_each_count(cli, tmp_path):
    out = tmp_path / "budgets"
    sets = [x for item in [*TINY, "iterations=3"] for x in ("--set", item)]  # 80, 120, 160, 200 steps
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "grbal,mb", "--seeds", "1", "--schedule", "fixed",
                       "--out", out, "--quiet", "--at-steps", "100,160", "--eval-planners", "rs,cem", *sets)  # fmt: skip
    assert code == 0, err
    for name in ("grbal", "mb"):
        for count, reached in ((100, 120), (160, 160)):
            stage = out / "runs" / f"{name}-s0" / "steps" / str(count)
            saved = json.loads((stage / "eval.json").read_text())
            assert saved["train_env_steps"] == reached
            assert json.loads((stage / "eval-planner-cem.json").read_text())["test_time"] == ["planner.name=cem"]
    # The final evaluation (200 steps) is not any budget's.
    assert json.loads((out / "runs" / "mb-s0" / "eval.json").read_text())["train_env_steps"] == 200
    budgets = json.loads((out / "report" / "budgets.json").read_text())
    assert budgets["steps"] == [100, 160]
    assert budgets["schedules"]["fixed"]["actual_steps"]["grbal@cem"] == [120, 160]
    assert "grbal@rs - mb@rs" in budgets["schedules"]["fixed"]["differences"]
    report = (out / "report" / "report.md").read_text()
    assert "## Held-out return by training budget" in report and "| GrBAL (CEM) - MB (CEM) |" in report
    assert (out / "report" / "returns_by_budget-fixed.png").exists()
    code, _, err = cli("compare", "--env", PENDULUM, "--algos", "mb", "--at-steps", "100,100", "--out", tmp_path / "x",
                       "--quiet")  # fmt: skip
    assert code == 2 and "--at-steps" in err and not (tmp_path / "x").exists()


def test_video_into_a_full_or_read_only_directory_is_one_line_and_leaves_nothing(
    tiny_compare, tmp_path, capsys, monkeypatch
):
    """Issue 40, case 6: refused before rendering where the directory cannot be written; a disk that
    fills during the write leaves no partial .gif or empty .mp4."""
    import errno

    import learn2adapt.run.run_dir as run_dir_module

    out, _ = tiny_compare
    run = str(out / "runs" / "grbal-s0")
    real_mkstemp = run_dir_module.tempfile.mkstemp

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(run_dir_module.tempfile, "mkstemp", read_only)
    code = main(["video", run, "--out", str(tmp_path / "ro" / "ep.gif"), "--steps", "4", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "read-only" in err
    monkeypatch.setattr(run_dir_module.tempfile, "mkstemp", real_mkstemp)

    import imageio.v2 as imageio

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imageio, "mimsave", full)
    for name in ("ep.gif", "ep.mp4"):
        code = main(["video", run, "--out", str(tmp_path / name), "--steps", "4", "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "no space left" in err and "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == []
