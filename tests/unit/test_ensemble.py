"""Probabilistic ensembles (PETS) and trajectory sampling in the planners."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.ensemble import EnsembleDynamics, bootstrap_indices, fit_ensemble
from learn2adapt.planning import make_planner
from tests.synthetic_tasks import LinearTaskFamily

OBS, ACT, B = 3, 2, 4


def _ensemble(hidden=(16,)) -> EnsembleDynamics:
    torch.manual_seed(0)
    return EnsembleDynamics(OBS, ACT, ModelConfig(hidden=list(hidden), ensemble=B))


def test_log_variance_stays_within_its_learned_bounds() -> None:
    model = _ensemble()
    with torch.no_grad():
        last = model.params()["b1"]
        last[..., OBS:] = 1e4  # raw log-variance far above the upper bound
        _, high = model(torch.zeros(B, 5, OBS + ACT))
        last[..., OBS:] = -1e4
        _, low = model(torch.zeros(B, 5, OBS + ACT))
    assert torch.all(high <= model.max_logvar + 1e-4) and torch.all(high > model.max_logvar - 0.01)
    assert torch.all(low >= model.min_logvar - 1e-4) and torch.all(low < model.min_logvar + 0.01)


def test_nll_is_the_gaussian_negative_log_likelihood_plus_the_bound_penalty() -> None:
    model = _ensemble()
    obs, act, nxt = torch.randn(B, 7, OBS), torch.randn(B, 7, ACT), torch.randn(B, 7, OBS)
    mean, logvar = model(model.inputs(obs, act))
    target = nxt - obs  # identity normaliser
    expected = ((mean - target) ** 2 / logvar.exp() + logvar).mean() + 0.01 * (
        model.max_logvar.sum() - model.min_logvar.sum()
    )
    assert torch.allclose(model.nll(obs, act, nxt), expected)
    # Its gradient reaches the bounds too (they are learned).
    model.nll(obs, act, nxt).backward()
    assert model.max_logvar.grad is not None and model.min_logvar.grad is not None


def test_beta_nll_weights_each_term_by_its_variance_without_a_gradient_through_the_weight() -> None:
    obs, act, nxt = torch.randn(B, 7, OBS), torch.randn(B, 7, ACT), torch.randn(B, 7, OBS)
    grads = {}
    for beta in (0.0, 0.5, 1.0):
        torch.manual_seed(0)
        model = EnsembleDynamics(OBS, ACT, ModelConfig(hidden=[16], ensemble=B, nll_beta=beta))
        out = model.net(model.inputs(obs, act)).detach().requires_grad_(True)
        mean, logvar = model.gaussian(out)
        terms = (mean - (nxt - obs)) ** 2 / logvar.exp() + logvar
        expected = (terms * logvar.exp().detach() ** beta).mean()
        penalty = 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())
        loss = model.gaussian_nll(out, nxt - obs)
        assert torch.allclose(loss, expected + penalty)
        loss.backward()
        grads[beta] = out.grad[..., :OBS]  # d loss / d mean
        mean_error = (mean - (nxt - obs)).detach()
    count = mean_error.numel()
    # beta = 1: the mean gets the squared error's gradient, whatever the variance; beta = 0: scaled by 1 / variance.
    assert torch.allclose(grads[1.0], 2 * mean_error / count, atol=1e-6)
    assert torch.allclose(grads[0.0], 2 * mean_error / logvar.exp().detach() / count, atol=1e-6)


def test_beta_nll_fits_a_nearly_deterministic_mean_better_than_the_plain_nll() -> None:
    """As on the cheetah (normalised one-step error 0.051 against 0.024, results/pets/nominal-gpu/):
    with almost no noise, the plain NLL's 1 / variance scaling leaves the mean underfit after the same
    steps. Measured (torch seeds 0-2): 0.19, 0.19, 0.13 (beta 0) against 0.09, 0.08, 0.06 (beta 0.5)."""
    from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer

    def delta(o: np.ndarray, a: np.ndarray) -> np.ndarray:
        return np.sin(2 * o) * (1 + a[:, :1])

    rng = np.random.default_rng(0)
    buf = TrajectoryBuffer(OBS, ACT)
    for _ in range(20):
        obs = rng.normal(size=(50, OBS)).astype(np.float32)
        act = rng.uniform(-1, 1, (50, ACT)).astype(np.float32)
        nxt = (obs + delta(obs, act) + 0.01 * rng.normal(size=(50, OBS))).astype(np.float32)
        buf.add_episode(Episode(obs, act, nxt, np.zeros(50, np.float32), np.zeros(50, bool), [{}] * 50))
    x = rng.normal(size=(400, OBS)).astype(np.float32)
    a = rng.uniform(-1, 1, (400, ACT)).astype(np.float32)
    truth = torch.as_tensor(delta(x, a))
    errors = {}
    for beta in (0.0, 0.5):
        torch.manual_seed(0)
        model = EnsembleDynamics(OBS, ACT, ModelConfig(hidden=[32, 32], ensemble=B, nll_beta=beta))
        model.normalizer.fit(buf.obs, buf.act, buf.next_obs)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        train = np.ones(len(buf), bool)
        train[:100] = False
        cfg = FitConfig(max_epochs=30, patience=30, batch_size=64)
        fit_ensemble(model, opt, buf, train, ~train, cfg, np.random.default_rng(0), False)
        with torch.no_grad():
            pred = model.predict_mean(torch.as_tensor(x), torch.as_tensor(a)) - torch.as_tensor(x)
        errors[beta] = float((pred - truth).pow(2).mean())
    assert errors[0.5] < 0.7 * errors[0.0], errors


def test_fitted_members_learn_the_noise_of_the_data() -> None:
    """Targets with noise sd 0.1 in dimension 0 and 0.5 in the others: the learned variance follows."""
    from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer

    rng = np.random.default_rng(0)
    buf = TrajectoryBuffer(OBS, ACT)
    for _ in range(30):
        obs = rng.normal(size=(40, OBS)).astype(np.float32)
        act = rng.uniform(-1, 1, (40, ACT)).astype(np.float32)
        noise = rng.normal(size=(40, OBS)) * np.array([0.1, 0.5, 0.5])
        nxt = (obs + 0.5 * act[:, :1] + noise).astype(np.float32)
        buf.add_episode(Episode(obs, act, nxt, np.zeros(40, np.float32), np.zeros(40, bool), [{}] * 40))
    model = _ensemble(hidden=(32, 32))
    model.normalizer.fit(buf.obs, buf.act, buf.next_obs)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    train = np.ones(len(buf), bool)
    train[:200] = False
    fit_ensemble(model, opt, buf, train, ~train, FitConfig(max_epochs=60, patience=60, batch_size=64), rng, False)
    with torch.no_grad():
        _, logvar = model(
            model.inputs(torch.as_tensor(buf.obs[:200]), torch.as_tensor(buf.act[:200])).expand(B, -1, -1)
        )
    sd = (logvar.exp().mean((0, 1)) ** 0.5) * model.normalizer.delta_std
    assert 0.05 < float(sd[0]) < 0.2 and all(0.3 < float(s) < 0.8 for s in sd[1:]), sd


def test_members_see_different_bootstrap_resamples_of_the_training_set() -> None:
    train = np.arange(10, 110)  # indices 0-9 are validation
    boot = bootstrap_indices(train, B, np.random.default_rng(0))
    assert boot.shape == (B, 100) and np.isin(boot, train).all()
    assert len({tuple(np.sort(row)) for row in boot}) == B  # four different resamples
    assert all(len(np.unique(row)) < 100 for row in boot)  # with replacement


def _constant_members() -> EnsembleDynamics:
    """Member b always predicts the state change b + 1 (no noise to speak of)."""
    model = _ensemble()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        last = model.params()["b1"]
        for m in range(B):
            last[m, :OBS] = m + 1.0
            last[m, OBS:] = -1e4  # log-variance at its lower bound,
        model.min_logvar.fill_(-40.0)  # which is made negligible
    return model


def test_ts_inf_keeps_each_particle_on_one_member_over_the_horizon() -> None:
    model = _constant_members()
    H, P = 5, 2 * B
    planner = make_planner("rs", -np.ones(ACT), np.ones(ACT), horizon=H, num_candidates=3, particles=P, seed=0)
    reward = lambda s, a, n: n[..., 0]  # noqa: E731  (sum of the first coordinate over the horizon)
    actions = torch.zeros(1, 3 * P, H, ACT)
    per_row = planner.evaluate_rows(model.predict, reward, torch.zeros(1, OBS), actions).clone()
    member = torch.arange(3 * P) % B
    # A particle on member b moves by b + 1 every step: sum_t (t + 1)(b + 1) = 15 (b + 1).
    assert torch.allclose(per_row[0], 15.0 * (member + 1).float(), atol=1e-3)
    means = planner.evaluate(model.predict, reward, torch.zeros(1, OBS), torch.zeros(1, 3, H, ACT))
    assert torch.allclose(means, torch.full((1, 3), 15.0 * 2.5), atol=1e-3)  # members 1-4, twice each


def test_ts1_draws_each_particle_member_anew_every_step_and_keeps_the_candidate_totals() -> None:
    model = _constant_members()
    H, P = 5, 2 * B
    planner = make_planner(
        "rs", -np.ones(ACT), np.ones(ACT), horizon=H, num_candidates=3, particles=P, propagation="ts1", seed=0
    )
    seen: list[torch.Tensor] = []

    def predict(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        seen.append(obs[0, :, 0].clone())
        return model.predict(obs, act)

    torch.manual_seed(0)
    linear = planner.evaluate(predict, lambda s, a, n: n[..., 0], torch.zeros(1, OBS), torch.zeros(1, 3, H, ACT))
    # Each step a block of 2B rows hands out every member twice, whoever sits in which row:
    # the candidate's summed position is that of TS-inf (see the test above).
    assert torch.allclose(linear, torch.full((1, 3), 15.0 * 2.5), atol=1e-3)
    # After step 1 the rows of a candidate hold a permutation of its particles' states...
    member = torch.arange(3 * P) % B
    after_one = seen[1].reshape(3, P)
    assert torch.equal(after_one.sort(-1).values, (member + 1).float().reshape(3, P).sort(-1).values)
    assert not torch.equal(seen[1], (member + 1).float())  # ... not in the order TS-inf keeps
    # ... and by the end a particle has moved under several members: positions TS-inf never reaches.
    with torch.no_grad():
        final = model.predict(seen[-1].reshape(1, -1, 1).expand(1, -1, OBS).contiguous(), torch.zeros(1, 3 * P, ACT))
    assert not np.isin(final[0, :, 0].round().numpy(), [5.0, 10.0, 15.0, 20.0]).all()
    # A convex reward tells them apart: TS-inf's sum_t E[x_t^2] is 55 * mean((b + 1)^2) = 412.5;
    # TS-1 averages each particle over members, leaving (2.5 t)^2 plus ~1.25 t: about 362.
    square = lambda s, a, n: n[..., 0] ** 2  # noqa: E731
    ts_inf = make_planner("rs", -np.ones(ACT), np.ones(ACT), horizon=H, num_candidates=3, particles=P, seed=0)
    zeros = torch.zeros(1, 3, H, ACT)
    assert torch.allclose(ts_inf.evaluate(model.predict, square, torch.zeros(1, OBS), zeros), torch.tensor(412.5))
    ts1 = planner.evaluate(model.predict, square, torch.zeros(1, OBS), zeros)
    assert ((343.75 < ts1) & (ts1 < 390.0)).all(), ts1


@pytest.mark.parametrize("name", ["rs", "cem", "mppi", "icem"])
def test_planners_with_particles_rank_a_candidate_with_a_diverging_particle_last(name: str) -> None:
    P = 3

    def predict(obs, act):  # next = obs + act; particle 1 of candidates pushing right blows up
        nxt = obs + torch.cat([act, torch.zeros(*act.shape[:-1], OBS - ACT)], -1)
        rows = torch.arange(act.shape[1]) % P == 1
        bad = rows[None, :, None] & (act[..., :1] > 0)
        return torch.where(bad, torch.nan, nxt)

    planner = make_planner(name, -np.ones(ACT), np.ones(ACT), horizon=3, num_candidates=64, particles=P, seed=1)
    action = planner.plan(predict, lambda s, a, n: n[..., 0], torch.zeros(1, OBS))
    # Without the NaN the best candidates push right; with it, every one that does is ranked last.
    assert float(action[0, 0]) <= 0.0 and planner.num_fallbacks == 0


def test_an_ensemble_predicts_the_synthetic_family_after_a_fit() -> None:
    fam = LinearTaskFamily()
    buf = fam.make_buffer(60, 40, np.random.default_rng(0))
    model = EnsembleDynamics(fam.obs_dim, fam.act_dim, ModelConfig(hidden=[32, 32], ensemble=3))
    model.normalizer.fit(buf.obs, buf.act, buf.next_obs)
    rng = np.random.default_rng(1)
    train = rng.random(len(buf)) > 0.2
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [torch.as_tensor(x) for x in (buf.obs, buf.act, buf.next_obs)]
    with torch.no_grad():
        before = float(model.mean_mse(*data))
    fit_ensemble(model, opt, buf, train, ~train, FitConfig(max_epochs=10, patience=3), rng, False)
    with torch.no_grad():
        after = float(model.mean_mse(*data))
    assert after < 0.5 * before


def test_the_pets_workload_benchmark_runs_at_tiny_sizes() -> None:
    from learn2adapt.benchmarks import pets

    out = pets.run(repeats=1, threads=1, candidates=8, particles=5, horizon=2, hidden=[8])
    assert out["pets_evals_per_plan"] == 5 * 8 * 5 * 2 and "CEM 5 x 8" in str(out["pets_workload"])
    for planner in ("cem", "mppi", "icem"):
        assert float(out[f"pets_{planner}_plan_ms"]) > 0 and float(out[f"pets_{planner}_bf16_plan_ms"]) > 0
    # iCEM: 5 populations floored at min(2 x 8 elites, 8 candidates) = 8, plus round(0.3 x 8) = 2
    # carried elites each, x 5 particles x horizon 2
    assert out["pets_icem_evals_per_plan"] == 5 * (8 + 2) * 5 * 2


def test_the_bf16_check_of_an_ensemble_run_compares_precision_not_sampling_noise(tmp_path) -> None:
    """``bench --run`` on a PE-TS run: the same answer twice, and bf16 ranks candidates as fp32 does."""
    from learn2adapt.benchmarks.planning import bf16_agreement_on_run
    from learn2adapt.run.config import RunConfig
    from learn2adapt.run.loop import train
    from learn2adapt.run.options import apply_overrides
    from tests.conftest import PENDULUM, TINY_RUN

    cfg = apply_overrides(
        RunConfig(env=PENDULUM, algo="mb", seed=0), [*TINY_RUN, "model.ensemble=3", "planner.particles=3"]
    )
    train(cfg, tmp_path / "run", progress=False)
    first = bf16_agreement_on_run(str(tmp_path / "run"), num_states=4, num_candidates=200)
    again = bf16_agreement_on_run(str(tmp_path / "run"), num_states=4, num_candidates=200)
    assert first["spearman"] == again["spearman"]  # sampled predictions would differ from call to call
    assert min(first["spearman"]) > 0.98, first


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (["model.ensemble=5", "model.nll_beta=1.5"], "model.nll_beta must be in"),
        (["model.ensemble=1", "model.nll_beta=0.5"], "set model.ensemble >= 2"),
        (["planner.propagation=ts2"], "unknown planner propagation 'ts2'; available: ts_inf, ts1"),
        (["planner.propagation=ts1", "planner.particles=1"], "set planner.particles >= 2"),
        (["planner.name=cem", "planner.cem.sampling=uniform"], "unknown CEM sampling 'uniform'; available: clipped"),
    ],
)
def test_bad_ensemble_options_are_refused_with_what_to_write(changes, message) -> None:
    """Refused before a run directory is touched (the config, then the parts, check their options)."""
    from learn2adapt.errors import ConfigError
    from learn2adapt.run.loop import check_config
    from learn2adapt.run.options import apply_overrides
    from learn2adapt.run.presets import preset_config

    cfg = apply_overrides(preset_config("learn2adapt/PendulumVaried-v0", "quick", "mb"), changes)
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)
