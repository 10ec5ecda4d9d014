"""End to end: MB with MPC on the cheap Pendulum family beats random actions."""

import json

import numpy as np
import pytest
import torch

from learn2adapt.envs import make_env
from learn2adapt.evaluation.protocol import evaluate
from learn2adapt.run.config import RunConfig
from learn2adapt.run.loop import train
from learn2adapt.run.options import apply_overrides
from learn2adapt.run.rollout import RandomPolicy, run_episodes
from learn2adapt.run.state import load_run
from tests.conftest import PENDULUM, as_sets

SMALL = [
    "iterations=1",
    "random_episodes=8",
    "episodes_per_iteration=2",
    "episode_length=150",
    "num_envs=2",
    "model.hidden=128x128",
    "fit.max_epochs=40",
    "planner.horizon=15",
    "planner.num_candidates=400",
]


def test_mb_mpc_beats_random_actions(tmp_path):
    cfg = apply_overrides(RunConfig(env=PENDULUM, algo="mb", seed=3), SMALL)
    st = train(cfg, tmp_path / "run", progress=False)
    assert st.iteration == 1 and (tmp_path / "run" / "DONE").exists()
    assert len(st.buffer) == (8 + 2) * 150  # every collected transition is stored

    loaded = load_run(tmp_path / "run")
    # Tasks of the training distribution: this checks the MB pipeline itself; held-out
    # tasks, where MB is expected to struggle, are the adaptation tests' business.
    task_rng = np.random.default_rng(5)
    tasks = [make_env(cfg.env).unwrapped.sample_task("train", task_rng) for _ in range(2)]
    mpc = evaluate(loaded, episodes_per_task=2, tasks=tasks, seed=1, progress=False)

    env = make_env(cfg.env, max_episode_steps=cfg.episode_length)
    rng = np.random.default_rng(1)
    random_returns = []
    for task in tasks:
        eps = run_episodes(
            [env], RandomPolicy(env.action_space, 1, rng), 2, lambda k, task=task: (task, 100 + k), progress=False
        )
        random_returns += [ep.total_reward for ep in eps]
    assert mpc.mean > np.mean(random_returns) + 0.4 * abs(np.mean(random_returns)), (mpc.mean, random_returns)

    # bf16 planning ranks candidates of the trained model like fp32 does.
    from learn2adapt.benchmarks.planning import bf16_agreement_on_run

    agreement = bf16_agreement_on_run(str(tmp_path / "run"), num_states=4, num_candidates=200)
    assert min(agreement["spearman"]) > 0.98, agreement


def test_same_seed_same_numbers(tmp_path):
    over = [
        "iterations=1",
        "random_episodes=3",
        "episodes_per_iteration=1",
        "episode_length=40",
        "num_envs=1",
        "model.hidden=32",
        "fit.max_epochs=3",
        "planner.horizon=5",
        "planner.num_candidates=50",
    ]
    results = []
    for name in ("a", "b"):
        cfg = apply_overrides(RunConfig(env=PENDULUM, algo="mb", seed=7), over)
        st = train(cfg, tmp_path / name, progress=False)
        results.append((st.buffer.obs.copy(), st.rule.module.state_dict()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for k, v in results[0][1].items():
        assert (v == results[1][1][k]).all(), k


def test_a_pe_ts_evaluation_does_not_depend_on_what_ran_before_it(tmp_path):
    """PE-TS samples its predictions from torch's global generator: evaluate seeds it per task and
    restores it, so the same evaluation gives the same returns after any other work in the process."""
    over = ["iterations=1", "random_episodes=2", "episodes_per_iteration=1", "episode_length=30", "num_envs=1",
            "model.hidden=16", "model.ensemble=2", "planner.particles=2", "fit.max_epochs=2", "adaptation.past=8",
            "adaptation.future=8", "planner.horizon=4", "planner.num_candidates=32"]  # fmt: skip
    cfg = apply_overrides(RunConfig(env=PENDULUM, algo="mb", seed=1), over)
    train(cfg, tmp_path / "run", progress=False)
    st = load_run(tmp_path / "run")
    first = evaluate(st, episodes_per_task=1, seed=0, progress=False, measure_model=False)
    torch.rand(1000)  # other work moves the global generator
    before = torch.random.get_rng_state()
    again = evaluate(st, episodes_per_task=1, seed=0, progress=False, measure_model=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert first.to_json()["mean"] == again.to_json()["mean"]
    other = evaluate(st, episodes_per_task=1, seed=1, progress=False, measure_model=False)
    assert other.to_json()["mean"] != first.to_json()["mean"]  # the seed does choose the draws


def test_metrics_split_each_iteration_into_collection_and_fit(tmp_path):
    from learn2adapt.run.metrics_log import MetricsLog

    over = [
        "iterations=2",
        "random_episodes=2",
        "episodes_per_iteration=1",
        "episode_length=40",
        "num_envs=1",
        "model.hidden=16",
        "fit.max_epochs=2",
        "planner.horizon=4",
        "planner.num_candidates=30",
        "adaptation.past=4",
        "adaptation.future=4",
    ]
    cfg = apply_overrides(RunConfig(env=PENDULUM, algo="grbal", seed=1), over)
    train(cfg, tmp_path / "run", progress=False)
    rows = MetricsLog.read(tmp_path / "run" / "metrics.csv")
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert 0 < r["collect_policy_seconds"] + r["collect_env_seconds"] <= r["collect_seconds"] + 1e-3
        assert r["fit_seconds"] > 0 and r["fit/epochs"] >= 1 and r["fit/steps"] >= r["fit/epochs"]


def test_eta_projects_constant_collection_and_fits_growing_with_the_data():
    from learn2adapt.run.eta import format_duration, remaining_seconds

    rows = [{"iteration": 0, "env_steps": 100, "collect_seconds": 1.0, "fit_seconds": 1.0}]
    assert remaining_seconds(rows, 5) is None  # no MPC iteration yet: nothing to project from
    rows.append({"iteration": 1, "env_steps": 200, "collect_seconds": 10.0, "fit_seconds": 2.0})
    # 2 iterations left: collection 2 x 10 s; fits 0.01 s/step x (300 + 400) steps
    assert remaining_seconds(rows, 3) == pytest.approx(20.0 + 7.0)
    assert remaining_seconds(rows, 1) == 0.0
    assert format_duration(45) == "45 s" and format_duration(720) == "12 min" and format_duration(3900) == "1 h 05 min"


def test_a_grbal_run_is_evaluated_with_the_mixture(cli, one_line_error, tmp_path):
    import json

    run = tmp_path / "run"
    sets = [
        "iterations=1", "random_episodes=3", "episodes_per_iteration=1", "episode_length=60", "num_envs=1",
        "model.hidden=16", "fit.max_epochs=2", "planner.horizon=4", "planner.num_candidates=30",
        "adaptation.past=8", "adaptation.future=8",
    ]  # fmt: skip
    argv = ["train", "--env", PENDULUM, "--algo", "grbal", "--run-dir", run, "--quiet"]
    code, _, err = cli(*argv, *[a for s in sets for a in ("--set", s)])
    assert code == 0, err
    code, out, err = cli("eval", run, "--quiet", "--episodes", "1", "--online", "mole", "--output", tmp_path / "m.json")
    assert code == 0, err
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["algo"] == "mole" and np.isfinite(result["mean"])
    code, _, err = cli("eval", run, "--quiet", "--online", "rebal")
    one_line_error(code, err, "cannot be evaluated with rebal")
    # Test-time options change on a trained run: one model only = continued adaptation.
    code, _, err = cli("eval", run, "--quiet", "--episodes", "1", "--online", "mole", "--schedule", "recurring:period=20",
                       "--set", "adaptation.mixture.max_models=1", "--output", tmp_path / "one.json")  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "one.json").read_text())["recall"]["mean_models"] == 1.0
    # The mixture told the true task recalls each task's own model on every revisit.
    code, _, err = cli("eval", run, "--quiet", "--episodes", "1", "--online", "mole-oracle", "--schedule",
                       "sequence:A=15,B=10,A=20,C=5,B=10", "--output", tmp_path / "oracle.json")  # fmt: skip
    assert code == 0, err
    recall = json.loads((tmp_path / "oracle.json").read_text())["recall"]
    assert recall["revisits"] == 4 * 2 and recall["recall_rate"] == 1.0 and recall["models_per_task"] == 1.0
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "mole-oracle", "--run-dir", tmp_path / "o", "--quiet")
    one_line_error(code, err, "mole-oracle is evaluation only", "--online mole-oracle")
    assert not (tmp_path / "o").exists()
    code, _, err = cli("eval", run, "--quiet", "--set", "model.hidden=8")
    one_line_error(code, err, "--set model.hidden=8", "test-time options")
    # The run's own evaluations join eval.json schedule by schedule; one with options changed (a
    # seed other than the run's too) goes to a file of its own, so `compare` never reuses it.
    for schedule in ("fixed", "switch:t=20"):
        code, _, err = cli("eval", run, "--quiet", "--episodes", "1", "--schedule", schedule)
        assert code == 0, err
    own = json.loads((run / "eval.json").read_text())
    assert list(own["schedules"]) == ["fixed", "switch:t=20"] and own["schedule"] == "fixed"
    # It records the checkpoint it evaluated: the checksum stored in it and its iteration.
    import torch

    stored = torch.load(run / "checkpoint.pt", weights_only=True)
    assert own["checkpoint"] == stored["digest"] and own["train_iteration"] == stored["iteration"] == 1
    assert own["seed"] == own["run_seed"] == 0 and own["test_time"] == []
    code, _, err = cli("eval", run, "--quiet", "--episodes", "1", "--seed", "3", "--set", "planner.num_candidates=8")
    assert code == 0, err
    changed = json.loads((run / "eval-seed=3_planner.num_candidates=8.json").read_text())
    assert changed["test_time"] == ["seed=3", "planner.num_candidates=8"] and changed["seed"] == 3
    assert json.loads((run / "eval.json").read_text()) == own


def test_a_recurring_schedule_reports_recall_and_the_mixture_assignment(cli, tmp_path):
    import json

    sets = [
        "iterations=1", "random_episodes=3", "episodes_per_iteration=1", "episode_length=80", "num_envs=1",
        "model.hidden=16", "fit.max_epochs=2", "planner.horizon=4", "planner.num_candidates=30",
        "adaptation.past=8", "adaptation.future=8", "eval.episodes_per_task=1",
    ]  # fmt: skip
    out = tmp_path / "cmp"
    code, _, err = cli(
        "compare", "--env", PENDULUM, "--algos", "grbal,mole", "--seeds", "1", "--schedule", "recurring:period=20",
        "--out", out, "--quiet", *[a for s in sets for a in ("--set", s)],
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "report" / "summary.json").read_text())["recurring:period=20"]
    assert summary["grbal"]["revisit_reward"]["n"] == 1 and summary["grbal"]["assignment_ari"]["n"] == 0
    mole = summary["mole"]
    assert mole["mixture_models"]["n"] == 1 and mole["mixture_models"]["mean"] >= 1
    assert 0 < mole["assignment_purity"]["mean"] <= 1
    assert "Recall" in (out / "report" / "report.md").read_text()


PAPER_DOMAINS = ["learn2adapt/HalfCheetahDisabledJoint-v0", "learn2adapt/AntCrippledLeg-v0",
                 "learn2adapt/HalfCheetahSlopes-v0", "learn2adapt/HalfCheetahPier-v0"]  # fmt: skip


@pytest.mark.parametrize("env_id", PAPER_DOMAINS)
def test_each_paper_domain_trains_one_medium_iteration_with_every_paper_algorithm(cli, tmp_path, env_id):
    from learn2adapt.adaptation import PAPER_ALGORITHMS

    tiny = ["iterations=1", "random_episodes=1", "episodes_per_iteration=1", "episode_length=24", "num_envs=1",
            "model.hidden=16", "fit.max_epochs=1", "planner.horizon=3", "planner.num_candidates=16",
            "adaptation.past=4", "adaptation.future=4", "adaptation.rnn_hidden=8"]  # fmt: skip
    for algo in PAPER_ALGORITHMS:
        run = tmp_path / algo
        code, _, err = cli("train", "--env", env_id, "--preset", "medium", "--algo", algo, "--run-dir", run, "--quiet",
                           *as_sets(tiny, algo))  # fmt: skip
        assert code == 0, (algo, err)
        rows = (run / "metrics.csv").read_text().splitlines()
        assert len(rows) == 3 and "nan" not in rows[-1].split(",")[3], (algo, rows)  # iterations 0 and 1, finite return


def test_pe_ts_and_its_adaptive_variants_train_and_evaluate_through_the_cli(cli, one_line_error, tmp_path):
    run = tmp_path / "pets"
    tiny = ["iterations=1", "random_episodes=3", "episodes_per_iteration=1", "episode_length=40", "num_envs=1",
            "model.hidden=16x16", "model.ensemble=3", "fit.max_epochs=2", "planner.horizon=4",
            "planner.num_candidates=16", "planner.particles=6", "eval.episodes_per_task=1"]  # fmt: skip
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "mb", "--run-dir", run, "--quiet", *as_sets(tiny))
    assert code == 0, err
    code, _, err = cli("eval", run, "--quiet")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    assert np.isfinite(result["mean"]) and np.isfinite(result["pred_error_after"])
    assert result["open_loop_before"] == result["open_loop_after"]  # MB does not adapt
    # PE-TS + GrBAL / MB+DE (members adapted one by one) and PE-TS + ReBAL (one state, every member).
    for algo in ("grbal", "mbde", "rebal"):
        code, _, err = cli("train", "--env", PENDULUM, "--algo", algo, "--run-dir", tmp_path / algo, "--quiet",
                           *as_sets([*tiny, "adaptation.past=8", "adaptation.future=8"]))  # fmt: skip
        assert code == 0, (algo, err)
        code, _, err = cli("eval", tmp_path / algo, "--quiet")
        assert code == 0, (algo, err)
        result = json.loads((tmp_path / algo / "eval.json").read_text())
        assert np.isfinite(result["mean"]) and result["pred_error_after"] <= 1.5 * result["pred_error_before"], algo
        assert len(result["open_loop_after"]) == 8 and np.isfinite(result["open_loop_after"]).all(), algo  # 1..K ahead
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "mole", "--run-dir", tmp_path / "r", "--quiet",
                       "--set", "model.ensemble=3")  # fmt: skip
    one_line_error(code, err, "model.ensemble > 1", "--algo mb, mbde, grbal, rebal")


#: A pendulum run of a second on the nominal task alone, evaluated there.
TINY_NOMINAL = ["iterations=1", "random_episodes=2", "episodes_per_iteration=1", "episode_length=30", "num_envs=1",
                "model.hidden=16", "fit.max_epochs=1", "planner.horizon=3", "planner.num_candidates=16",
                "eval.episodes_per_task=1", "nominal=true", "eval.schedule=fixed", "adaptation.past=8",
                "adaptation.future=8"]  # fmt: skip


def test_nominal_runs_train_and_evaluate_on_the_unmodified_system(cli, one_line_error, tmp_path):
    run = tmp_path / "nominal"
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "mb", "--run-dir", run, "--quiet", *as_sets(TINY_NOMINAL))
    assert code == 0, err
    code, _, err = cli("eval", run, "--quiet")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    assert [t["task"] for t in result["tasks"]] == [{"mass": 1.0, "length": 1.0}]
    code, _, err = cli("train", "--env", PENDULUM, "--run-dir", tmp_path / "x", "--quiet",
                       *as_sets(["nominal=true", "eval.schedule=switch:t=100"]))  # fmt: skip
    one_line_error(code, err, "nominal=true", "eval.schedule=fixed")
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_the_pets_preset_trains_one_tiny_iteration_of_each_ensemble_variant(cli, tmp_path):
    from learn2adapt.adaptation import ENSEMBLE_ALGORITHMS

    tiny = ["iterations=1", "episode_length=40", "eval.episode_length=40", "model.hidden=16", "fit.max_epochs=1",
            "planner.horizon=3", "planner.num_candidates=16", "planner.cem.elites=4", "planner.cem.iterations=2",
            "planner.particles=5", "adaptation.past=4", "adaptation.future=4", "adaptation.rnn_hidden=8"]  # fmt: skip
    for algo in ENSEMBLE_ALGORITHMS:
        run = tmp_path / algo
        code, _, err = cli("train", "--env", "learn2adapt/HalfCheetahMassDamping-v0", "--preset", "pets", "--algo",
                           algo, "--run-dir", run, "--quiet", *as_sets(tiny, algo))  # fmt: skip
        assert code == 0, (algo, err)
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["model"]["ensemble"] == 5 and cfg["planner"]["name"] == "cem", algo
        rows = (run / "metrics.csv").read_text().splitlines()
        assert len(rows) == 3 and "nan" not in rows[-1].split(",")[3], (algo, rows)
        assert "velocity_mean" in rows[0].split(","), rows[0]  # a locomotion family: forward velocity per iteration


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_run_trained_on_a_gpu_is_evaluated_on_a_machine_without_one(cli, tmp_path):
    run = tmp_path / "gpu-run"
    code, _, err = cli("train", "--env", PENDULUM, "--algo", "mb", "--run-dir", run, "--quiet", *as_sets(TINY_NOMINAL))
    assert code == 0, err
    # Make it what a GPU machine writes: its config says cuda (the checkpoint's digest leaves the device out).
    saved = json.loads((run / "config.json").read_text())
    saved["device"] = "cuda"
    (run / "config.json").write_text(json.dumps(saved))
    code, _, err = cli("eval", run, "--quiet")
    assert code == 0, err
    assert err.count("loading it on the cpu") == 1, err
    assert json.loads((run / "eval.json").read_text())["tasks"][0]["returns"]
    code, _, err = cli("train", "--resume", run, "--quiet", "--set", "iterations=2")  # it moves with --set device
    assert code == 2 and "--set device=cpu" in err, err


def test_grbal_meta_trains_on_the_quick_humanoid_whose_episodes_end_in_a_fall(cli, tmp_path):
    # The humanoid falls within ~20 random steps: the preset's segments must fit such episodes.
    run = tmp_path / "humanoid"
    tiny = ["iterations=0", "model.hidden=16", "fit.max_epochs=1", "eval.episodes_per_task=1"]
    code, _, err = cli("train", "--env", "learn2adapt/SlimHumanoidMassDamping-v0", "--preset", "quick", "--algo",
                       "grbal", "--run-dir", run, "--quiet", *as_sets(tiny))  # fmt: skip
    assert code == 0, err
    assert (run / "DONE").exists()
