"""The paper-run projection of ``learn2adapt bench``: its formulas and its ``--set`` options."""

from __future__ import annotations

import math

import pytest

from learn2adapt.benchmarks.paper_run import paper_config, project_seconds

#: Measured figures made up for the formulas: ms per batched plan, per env step, per meta-step, per validation.
FIGURES = {"adapt_plan_ms": 50.0, "env_step_ms": 0.1, "meta_step_ms": 10.0, "val_ms": 800.0}
FLOP, RATE = 1_000_000, 900.0


def _project(*overrides: str, epochs_per_fit: float = 8.0) -> tuple[float, float, float]:
    cfg = paper_config(overrides)
    return project_seconds(cfg, **FIGURES, flop_per_eval=FLOP, matmul_gflops=RATE, epochs_per_fit=epochs_per_fit)


def test_collection_and_floor_follow_the_documented_formulas() -> None:
    cfg = paper_config(["iterations=2"])
    mpc_steps = 2 * cfg.episodes_per_iteration * cfg.episode_length
    random_steps = cfg.random_episodes * cfg.episode_length
    collect, _, floor = _project("iterations=2")
    assert collect == pytest.approx(mpc_steps / cfg.num_envs * 50.0 / 1e3 + (mpc_steps + random_steps) * 0.1 / 1e3)
    assert floor == pytest.approx(mpc_steps * cfg.planner.num_candidates * cfg.planner.horizon * FLOP / (RATE * 1e9))


def test_a_step_budget_caps_every_fit_with_one_last_validation() -> None:
    # A budget of one step ends each of the 3 fits (iterations 0, 1, 2) after that step and one validation.
    _, capped, _ = _project("iterations=2", "fit.max_steps=1")
    assert capped == pytest.approx(3 * (10.0 + 800.0) / 1e3)
    # A budget no fit reaches changes nothing; without one, fits scale with their epochs.
    _, free, _ = _project("iterations=2")
    _, unreached, _ = _project("iterations=2", "fit.max_steps=1000000")
    _, half, _ = _project("iterations=2", epochs_per_fit=4.0)
    assert unreached == pytest.approx(free) and half == pytest.approx(free / 2)
    # A budget inside an epoch costs ceil(budget / epoch) validations: more steps, no fewer validations.
    cfg = paper_config(["iterations=0"])
    data = cfg.random_episodes * cfg.episode_length
    epoch = int((1 - cfg.fit.val_fraction) * data) // (cfg.adaptation.meta_batch * 32)
    budget = epoch + 1
    _, one_fit, _ = _project("iterations=0", f"fit.max_steps={budget}")
    assert one_fit == pytest.approx((budget * 10.0 + math.ceil(budget / epoch) * 800.0) / 1e3)


def test_the_fit_options_leave_collection_and_floor_alone() -> None:
    base, over = _project(), _project("fit.precision=bf16", "fit.max_steps=1500")
    assert base[0] == over[0] and base[2] == over[2] and over[1] < base[1]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--only", "paper_run", "--set", "fit.max_steps=-3"], "max_steps"),
        (["--only", "paper_run", "--set", "fit.nonsense=1"], "nonsense"),
        (["--only", "planning", "--set", "fit.max_steps=1500"], "add paper_run to --only"),
    ],
)
def test_bench_refuses_bad_projection_options_before_measuring(cli, one_line_error, argv, needle) -> None:
    code, out, err = cli("bench", *argv)
    one_line_error(code, err, needle)
    assert out == ""  # nothing measured, not even the matmul rate
