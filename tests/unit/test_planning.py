"""Planners on problems with known answers: linear dynamics, quadratic rewards."""

from __future__ import annotations

import math

import pytest
import torch

from learn2adapt.planning import PlannerConfig, make_planner
from learn2adapt.planning.base import Planner
from learn2adapt.planning.config import CEMOptions

PLANNERS = ["rs", "cem", "mppi", "icem"]
OPTIMISERS = ["cem", "mppi", "icem"]
DT = 0.1


def point_mass(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``s' = A s + B a`` for a ``dim``-D point mass: state (position, velocity), action force."""
    A = torch.eye(2 * dim)
    A[:dim, dim:] = DT * torch.eye(dim)
    B = torch.zeros(2 * dim, dim)
    B[dim:] = DT * torch.eye(dim)
    return A, B


def linear_predict(A: torch.Tensor, B: torch.Tensor):
    return lambda s, a: s @ A.T + a @ B.T


def target_reward(target: torch.Tensor, dim: int):
    """Quadratic: distance of the next position to ``target`` plus a little velocity."""
    return lambda s, a, n: -((n[..., :dim] - target) ** 2).sum(-1) - 0.1 * (n[..., dim:] ** 2).sum(-1)


def run_episode(planner: Planner, predict, reward, start: torch.Tensor, steps: int) -> tuple[torch.Tensor, float]:
    """Closed loop on the true (= model) dynamics; final states and mean total reward."""
    s, total = start.clone(), torch.zeros(start.shape[0])
    for _ in range(steps):
        a = planner.plan(predict, reward, s)
        n = predict(s.unsqueeze(1), a.unsqueeze(1)).squeeze(1)
        total += reward(s, a, n)
        s = n
    return s, float(total.mean())


OPTIONS = {
    "rs": {},
    "cem": {"iterations": 4, "elites": 20},
    "mppi": {"iterations": 4, "temperature": 0.1},
    "icem": {"iterations": 4, "elites": 10},
}


@pytest.mark.parametrize("name", PLANNERS)
def test_drives_point_mass_to_target(name: str) -> None:
    A, B = point_mass(2)
    target = torch.tensor([1.0, -0.5])
    planner = make_planner(name, -torch.ones(2), torch.ones(2), horizon=15, num_candidates=200, seed=0, **OPTIONS[name])
    final, _ = run_episode(planner, linear_predict(A, B), target_reward(target, 2), torch.zeros(2, 4), steps=60)
    assert torch.allclose(final[:, :2], target.expand(2, 2), atol=0.05), final
    assert final[:, 2:].abs().max() < 0.15


@pytest.mark.parametrize("name", ["cem", "icem"])
def test_truncated_sampling_drives_the_point_mass_too(name: str) -> None:
    A, B = point_mass(2)
    target = torch.tensor([1.0, -0.5])
    options = {**OPTIONS[name], "sampling": "truncated", **({"noise_beta": 0.0} if name == "icem" else {})}
    planner = make_planner(name, -torch.ones(2), torch.ones(2), horizon=15, num_candidates=200, seed=0, **options)
    final, _ = run_episode(planner, linear_predict(A, B), target_reward(target, 2), torch.zeros(2, 4), steps=60)
    assert torch.allclose(final[:, :2], target.expand(2, 2), atol=0.05), final


def test_truncated_samples_stay_strictly_inside_the_bounds_where_clipped_ones_pile_up_on_them() -> None:
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0])
    mean = torch.tensor([0.9, 1.0]).expand(1, 4, 2).clone()  # (E=1, H=4, A=2)
    std = torch.full_like(mean, 0.5)
    piled = {}
    for sampling in ("clipped", "truncated"):
        cem = make_planner("cem", low, high, horizon=4, num_candidates=4000, seed=0, sampling=sampling)
        noise = cem._sample_normal("actions", 1, 4000)
        if sampling == "truncated":  # a standard normal cut at +-2: sd 0.880
            assert float(noise.abs().max()) <= 2.0 and abs(float(noise.std()) - 0.880) < 0.01
        actions = cem._candidates(noise, mean, std)
        assert ((actions >= low) & (actions <= high)).all()
        piled[sampling] = float((actions[..., 0] == 1.0).float().mean())
        if sampling == "truncated":  # the std near the bound is capped at (1 - 0.9) / 2
            assert abs(float(actions[..., 0].std()) - 0.05 * 0.880) < 0.005
            assert abs(float(actions[..., 1].std()) - 0.5 * 0.880) < 0.02  # centred: the std as given
    assert piled["clipped"] > 0.35 and piled["truncated"] == 0.0, piled


def test_random_shooting_finds_the_optimal_first_action() -> None:
    # 1-D double integrator, H=2, reward -(x' - 1)^2 - 0.1 v'^2 - 0.1 a^2: the optimal open-loop
    # sequence is a linear least-squares solution (inside the bounds).
    A, B = point_mass(1)
    s0 = torch.tensor([0.0, 0.5])
    H, c = 2, 0.1
    rows, rhs = [], []
    Ak = torch.eye(2)
    for t in range(H):  # s_{t+1} = A^{t+1} s0 + sum_k A^{t-k} B a_k
        Ak = A @ Ak
        M = torch.zeros(2, H)
        for k in range(t + 1):
            M[:, k] = (torch.linalg.matrix_power(A, t - k) @ B)[:, 0]
        free = Ak @ s0
        rows += [M[0], math.sqrt(0.1) * M[1]]
        rhs += [1.0 - free[0], -math.sqrt(0.1) * free[1]]
    rows += [math.sqrt(c) * torch.eye(H)[k] for k in range(H)]
    rhs += [0.0] * H
    opt = torch.linalg.lstsq(torch.stack(rows), torch.tensor(rhs).unsqueeze(1)).solution.squeeze(1)
    assert opt.abs().max() < 1.0  # interior optimum

    def reward(s, a, n):
        return -((n[..., 0] - 1.0) ** 2) - 0.1 * n[..., 1] ** 2 - c * (a**2).sum(-1)

    planner = make_planner("rs", -torch.ones(1), torch.ones(1), horizon=H, num_candidates=20000, seed=1)
    action = planner.plan(linear_predict(A, B), reward, s0.unsqueeze(0))
    assert abs(float(action[0, 0]) - float(opt[0])) < 0.05, (action, opt)


@pytest.mark.parametrize("name", OPTIMISERS)
def test_beats_random_shooting_at_equal_sample_count(name: str) -> None:
    dim = 3
    A, B = point_mass(dim)
    predict, reward = linear_predict(A, B), target_reward(torch.linspace(-1, 1, dim), dim)
    start = torch.zeros(4, 2 * dim)
    start[:, :dim] = torch.randn(4, dim, generator=torch.Generator().manual_seed(3))
    low, high = -torch.ones(dim), torch.ones(dim)
    for seed in range(2):
        planner = make_planner(name, low, high, horizon=15, num_candidates=50, seed=seed, **OPTIONS[name])
        rs = make_planner("rs", low, high, horizon=15, num_candidates=planner.samples_per_plan, seed=seed)
        _, ours = run_episode(planner, predict, reward, start, steps=30)
        _, baseline = run_episode(rs, predict, reward, start, steps=30)
        assert ours > baseline + 3.0, (ours, baseline)


@pytest.mark.parametrize("name", PLANNERS)
def test_nan_candidates_never_win(name: str) -> None:
    # Reward favours large actions; the model returns NaN (or inf) whenever a > 0.5,
    # so the best finite plan keeps every action <= 0.5.
    def predict(s, a):
        n = s + a
        bad = a[..., :1] > 0.5
        return torch.where(bad, torch.full_like(n, float("nan")), n).where(
            a[..., :1] < 0.9, torch.full_like(n, float("inf"))
        )

    def reward(s, a, n):
        return n.sum(-1)

    planner = make_planner(name, -torch.ones(1), torch.ones(1), horizon=3, num_candidates=300, seed=0, **OPTIONS[name])
    for _ in range(3):
        action = planner.plan(predict, reward, torch.zeros(2, 1))
        assert torch.isfinite(action).all()
        assert (action <= 0.5 + 1e-6).all(), action
        assert (action > 0.0).all(), action  # still optimising among the finite ones


@pytest.mark.parametrize("name", PLANNERS)
def test_all_nan_falls_back_to_midpoint(name: str) -> None:
    planner = make_planner(
        name, torch.tensor([0.0, -2.0]), torch.tensor([1.0, 1.0]), horizon=3, num_candidates=50, seed=0
    )
    action = planner.plan(lambda s, a: s * float("nan"), lambda s, a, n: n.sum(-1), torch.zeros(3, 2))
    assert torch.equal(action, torch.tensor([[0.5, -0.5]] * 3))
    assert planner.num_fallbacks == 3


@pytest.mark.parametrize("name", PLANNERS)
def test_actions_within_bounds(name: str) -> None:
    low, high = torch.tensor([-0.3, 0.0, -2.0]), torch.tensor([0.2, 2.0, -1.0])
    seen = []

    def predict(s, a):
        seen.append(a.clone())
        return s + a

    # Rewards push every action far outside the box.
    def reward(s, a, n):
        return (a * torch.tensor([10.0, -10.0, 10.0])).sum(-1)

    planner = make_planner(name, low, high, horizon=4, num_candidates=100, seed=0, **OPTIONS[name])
    for _ in range(3):
        action = planner.plan(predict, reward, torch.zeros(2, 3))
        assert ((action >= low) & (action <= high)).all(), action
    candidates = torch.cat([a.reshape(-1, 3) for a in seen])
    assert ((candidates >= low) & (candidates <= high)).all()  # clipped before evaluation
    if name != "rs":  # the optimisers head for the corner the reward points to
        assert ((action - 0.5 * (low + high)) * torch.tensor([1.0, -1.0, 1.0]) > 0).all(), action


@pytest.mark.parametrize("name", PLANNERS)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_four_envs_at_once_equal_each_alone(name: str, precision: str) -> None:
    A, B = point_mass(2)
    predict, reward = linear_predict(A, B), target_reward(torch.tensor([0.5, -0.5]), 2)
    obs = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    low, high = -torch.ones(2), torch.ones(2)
    opts = dict(horizon=8, num_candidates=64, precision=precision, **OPTIONS[name])
    together = make_planner(name, low, high, seed=7, num_envs=4, **opts)
    seeds = Planner.env_seeds(7, 4)
    alone = [make_planner(name, low, high, seed=[seeds[e]], **opts) for e in range(4)]
    for step in range(4):
        if step == 2:  # an episode restarts in env 1 only
            together.reset(torch.tensor([False, True, False, False]))
            alone[1].reset()
        a_all = together.plan(predict, reward, obs)
        a_one = torch.cat([alone[e].plan(predict, reward, obs[e : e + 1]) for e in range(4)])
        assert torch.allclose(a_all, a_one, atol=1e-5), (step, a_all, a_one)
        obs = predict(obs.unsqueeze(1), a_all.unsqueeze(1)).squeeze(1)


@pytest.mark.parametrize("name", OPTIMISERS)
def test_elites_are_not_pooled_across_envs(name: str) -> None:
    # Env 0 wants a = +0.8 with rewards 1000x larger than env 1, which wants a = -0.8: ranking
    # pooled across environments would let env 0's candidates decide env 1's plan.
    targets = torch.tensor([0.8, -0.8]).view(2, 1, 1)
    scales = torch.tensor([1000.0, 1.0]).view(2, 1)

    def reward(s, a, n):
        return -scales * ((a - targets) ** 2).sum(-1)

    planner = make_planner(name, -torch.ones(1), torch.ones(1), horizon=2, num_candidates=100, seed=0, **OPTIONS[name])
    if name == "mppi":
        planner.temperature = 0.01
    action = planner.plan(lambda s, a: s + a, reward, torch.zeros(2, 1))
    assert action[0, 0] > 0.6 and action[1, 0] < -0.6, action


def test_rewards_after_termination_count_zero() -> None:
    planner = make_planner("rs", -torch.ones(1), torch.ones(1), horizon=10, num_candidates=5, seed=0)

    def predict(s, a):  # counts up; the model "explodes" after the terminal state
        return torch.where(s >= 3, torch.full_like(s, float("nan")), s + 1)

    actions = planner.sample(2)
    returns = planner.evaluate(
        predict,
        lambda s, a, n: torch.ones(n.shape[:-1]),
        torch.zeros(2, 1),
        actions,
        termination_fn=lambda s, a, n: n[..., 0] >= 3,
    )
    assert torch.equal(returns, torch.full((2, 5), 3.0))  # steps reaching 1, 2, 3 count, the rest are 0


def test_bf16_returns_are_fp32_and_close() -> None:
    A, B = point_mass(2)
    predict, reward = linear_predict(A, B), target_reward(torch.tensor([1.0, -0.5]), 2)
    p32 = make_planner("rs", -torch.ones(2), torch.ones(2), horizon=10, num_candidates=200, seed=0)
    p16 = make_planner("rs", -torch.ones(2), torch.ones(2), horizon=10, num_candidates=200, seed=0, precision="bf16")
    obs = torch.zeros(1, 4)
    actions = p32.sample(1).clone()
    r32 = p32.evaluate(predict, reward, obs, actions).clone()
    r16 = p16.evaluate(predict, reward, obs, actions)
    assert r16.dtype == torch.float32
    assert torch.allclose(r32, r16, rtol=0.05, atol=0.05)


def test_warm_start_reset_per_env_and_buffers_reused() -> None:
    A, B = point_mass(1)
    predict, reward = linear_predict(A, B), target_reward(torch.tensor([1.0]), 1)
    planner = make_planner("icem", -torch.ones(1), torch.ones(1), horizon=5, num_candidates=50, seed=0)
    first = planner.plan(predict, reward, torch.zeros(2, 2))
    kept = first.clone()
    ptr = planner._buffers["actions0"].data_ptr()
    planner.plan(predict, reward, torch.zeros(2, 2))
    assert planner._buffers["actions0"].data_ptr() == ptr  # no reallocation for unchanged sizes
    assert torch.equal(first, kept)  # returned actions do not alias the buffers
    assert planner._mean.abs().sum(dim=(1, 2)).min() > 0  # warm-started away from the midpoint
    planner.reset(torch.tensor([True, False]))
    assert planner._mean[0].abs().max() == 0 and planner._mean[1].abs().max() > 0
    assert planner._has_elites.tolist() == [False, True]


def test_factory_config_and_errors() -> None:
    cfg = PlannerConfig(name="cem", horizon=7, num_candidates=33, cem=CEMOptions(iterations=2, elites=5))
    planner = make_planner(cfg, [-1.0], [1.0], num_envs=3, seed=1)
    assert (planner.horizon, planner.num_candidates, planner.iterations, planner.elites) == (7, 33, 2, 5)
    assert len(planner.generators) == 3
    for name in ("rs", "random_shooting", "mppi", "icem"):
        assert make_planner(PlannerConfig(name=name), [-1.0], [1.0]).horizon == PlannerConfig().horizon
    with pytest.raises(ValueError, match="unknown planner 'nope'; available: rs, cem, mppi, icem"):
        make_planner("nope", [-1.0], [1.0])
    with pytest.raises(ValueError, match="no option 'elites'"):
        make_planner("rs", [-1.0], [1.0], elites=3)
    with pytest.raises(ValueError, match="precision"):
        make_planner("rs", [-1.0], [1.0], precision="fp8")
    with pytest.raises(ValueError, match="unknown planner propagation 'ts2'; available: ts_inf, ts1"):
        make_planner("rs", [-1.0], [1.0], propagation="ts2")
    with pytest.raises(ValueError, match="unknown CEM sampling 'uniform'; available: clipped, truncated"):
        make_planner("cem", [-1.0], [1.0], sampling="uniform")
    with pytest.raises(ValueError, match="set planner.icem.noise_beta=0, or sampling=clipped"):
        make_planner("icem", [-1.0], [1.0], sampling="truncated")


@pytest.mark.parametrize("horizon", [10, 11])
def test_icem_coloured_noise_has_unit_variance_and_is_correlated(horizon: int) -> None:
    planner = make_planner("icem", [-1.0], [1.0], horizon=horizon, num_candidates=10, noise_beta=2.0, seed=0)
    noise = planner._coloured("probe", 1, 20000)[0, :, :, 0]  # (samples, H)
    assert torch.allclose(noise.var(dim=0), torch.ones(horizon), atol=0.05)
    lag1 = (noise[:, 1:] * noise[:, :-1]).mean()
    assert lag1 > 0.5  # beta = 2: strongly correlated in time (white noise: 0)


def test_mppi_smoothing_correlates_perturbations() -> None:
    planner = make_planner("mppi", [-1.0], [1.0], horizon=10, num_candidates=5000, smoothing=0.8, seed=0)
    noise = planner._noise(1)[0, :, :, 0]
    assert (noise[:, 1:] * noise[:, :-1]).mean() / noise[:, 1:].var() > 0.6


def test_benchmark_runs_on_a_tiny_model() -> None:
    from learn2adapt.benchmarks import planning as bench

    threads = torch.get_num_threads()
    try:
        result = bench.run(planners=("rs", "icem"), num_candidates=16, horizon=3, hidden=(8,), repeats=1, warmup=1)
    finally:
        torch.set_num_threads(threads)
    assert {r["planner"] for r in result["rows"]} == {"rs", "icem"}
    assert all(r["plan_ms"] > 0 and r["plan_efficiency"] > 0 and r["addmm_plan_ms"] > 0 for r in result["rows"])
    assert len(result["bf16_agreement_random_mlp"]["spearman"]) == 4


def test_auto_precision_is_bf16_on_a_cpu() -> None:
    assert make_planner("rs", [-1.0], [1.0], precision="auto").precision == "bf16"
    assert make_planner("rs", [-1.0], [1.0], precision="fp32").precision == "fp32"
