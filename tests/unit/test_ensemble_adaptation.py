"""Adaptation on probabilistic ensembles: PE-TS + GrBAL and PE-TS + MB+DE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learn2adapt.adaptation import make_rule
from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.adaptation.grbal import GrBAL
from learn2adapt.adaptation.inner_update import normalised
from learn2adapt.adaptation.online import online_params
from learn2adapt.data.segment_sampler import SegmentSampler
from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.ensemble import LOGVAR_BOUND_WEIGHT, EnsembleDynamics
from learn2adapt.types import Window
from tests.synthetic_tasks import LinearTaskFamily

OBS, ACT, M, K, MEMBERS = 3, 2, 5, 4, 3


pytestmark = pytest.mark.usefixtures("one_thread")


def ensemble_rule(algo: str = "grbal", dtype=torch.float64, **adapt) -> GrBAL:
    """A small ensemble rule with random weights and a non-trivial normaliser."""
    torch.manual_seed(0)
    cfg = AdaptationConfig(**{"past": M, "future": K, "inner_lr": 0.3, "de_lr": 0.3, **adapt})
    model_cfg = ModelConfig(hidden=[8, 8], activation="tanh", ensemble=MEMBERS)
    rule = make_rule(algo, OBS, ACT, model_cfg, FitConfig(), cfg)
    rule.module.to(dtype)
    with torch.no_grad():
        n = rule.normalizer
        for t in (n.obs_mean, n.act_mean, n.delta_mean):
            t.normal_()
        for t in (n.obs_std, n.act_std, n.delta_std):
            t.uniform_(0.5, 2.0)
    return rule  # type: ignore[return-value]


def segments(B: int, L: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, L, OBS, generator=g, dtype=dtype)
    act = torch.rand(B, L, ACT, generator=g, dtype=dtype) * 2 - 1
    return obs, act, obs + torch.randn(B, L, OBS, generator=g, dtype=dtype)


def member_alpha(rule: GrBAL, name: str, b: int) -> torch.Tensor:
    alpha = rule.step_size.for_param(name)
    return alpha[b] if alpha.dim() > 0 else alpha


def adapt_member(rule: GrBAL, b: int, x: torch.Tensor, y: torch.Tensor, create_graph: bool) -> dict:
    """Reference: member ``b`` alone, MAML's inner steps on one window with ``autograd.grad``."""
    p = {n: v[b] for n, v in rule.model.params().items()}
    for _ in range(rule.adapt_cfg.inner_steps):
        inner = (rule.model.net(x, p)[..., :OBS] - y).pow(2).mean()
        grads = torch.autograd.grad(inner, list(p.values()), create_graph=create_graph)
        p = {n: p[n] - member_alpha(rule, n, b) * g for n, g in zip(list(p), grads)}
    return p


@pytest.mark.parametrize("step_size,steps", [("scalar", 1), ("scalar", 2), ("per_parameter", 1), ("fixed", 2)])
def test_ensemble_grbal_meta_gradient_equals_a_per_member_reference(step_size, steps):
    rule = ensemble_rule(step_size=step_size, inner_steps=steps)
    S = 2
    obs, act, nxt = segments(MEMBERS * S, M + K)
    params = [p for p in rule.module.parameters() if p.requires_grad]
    got = torch.autograd.grad(rule.meta_loss(obs, act, nxt), params)

    x, y = normalised(rule.model, obs, act, nxt)
    x, y = x.view(MEMBERS, S, M + K, -1), y.view(MEMBERS, S, M + K, -1)
    out = torch.stack(
        [
            torch.stack(
                [rule.model.net(x[b, s, M:], adapt_member(rule, b, x[b, s, :M], y[b, s, :M], True)) for s in range(S)]
            )
            for b in range(MEMBERS)
        ]
    )
    model = rule.model
    assert isinstance(model, EnsembleDynamics)
    mean, logvar = model.gaussian(out)
    reference = ((mean - y[..., M:, :]).pow(2) * torch.exp(-logvar) + logvar).mean()
    reference = reference + LOGVAR_BOUND_WEIGHT * (model.max_logvar.sum() - model.min_logvar.sum())
    torch.testing.assert_close(rule.meta_loss(obs, act, nxt), reference, rtol=1e-10, atol=1e-12)
    expected = torch.autograd.grad(reference, params)
    for g, r in zip(got, expected):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-11)
    # Members differ, and each was adapted on its own segments: permuting the members' data changes the loss.
    swapped = [t.view(MEMBERS, S, M + K, -1).flip(0).reshape(t.shape) for t in (obs, act, nxt)]
    assert abs(float(rule.meta_loss(*swapped).detach()) - float(reference.detach())) > 1e-6


def test_each_member_meta_trains_on_its_own_resample():
    """SegmentSampler.member_epoch: member b's rows of every batch come from its own starts."""
    n = 200
    obs = np.arange(n, dtype=np.float32)[:, None].repeat(OBS, 1)  # obs[i] = i: a window shows its start
    buf = TrajectoryBuffer(OBS, ACT)
    buf.add_episode(
        Episode(obs, np.zeros((n, ACT), np.float32), obs + 1, np.zeros(n, np.float32), np.zeros(n, bool), [{}] * n)
    )
    sampler = SegmentSampler(buf, M + K)
    rng = np.random.default_rng(0)
    starts = np.stack([np.arange(0, 60), np.arange(60, 120), np.arange(120, 180)])  # disjoint, for the check
    seen = [set() for _ in range(MEMBERS)]
    for w in sampler.member_epoch(starts, 7, rng):
        first = w.obs[:, 0, 0].view(MEMBERS, -1).long()
        for b in range(MEMBERS):
            assert set(first[b].tolist()) <= set(starts[b].tolist())
            seen[b] |= set(first[b].tolist())
    assert all(seen[b] == set(starts[b].tolist()) for b in range(MEMBERS))  # mode "starts": every start once


@pytest.mark.parametrize("algo", ["grbal", "mbde"])
def test_online_each_member_takes_its_own_step_per_environment(algo):
    rule = ensemble_rule(algo, torch.float32, step_size="per_parameter", inner_steps=2)
    E, N = 3, 8
    obs, act, nxt = segments(E, M, torch.float32, seed=1)
    recent = Window(obs, act, nxt, torch.tensor([0, 2, M]))
    g = torch.Generator().manual_seed(2)
    s, a = torch.randn(E, N, OBS, generator=g), torch.rand(E, N, ACT, generator=g) * 2 - 1
    model = rule.model
    assert isinstance(model, EnsembleDynamics)
    got = rule.mean_predictor(recent)(s, a)
    # Environment 0 has no transition yet: the fitted members, unchanged.
    torch.testing.assert_close(got[0], model.predict_mean(s[:1], a[:1])[0], rtol=1e-6, atol=1e-6)
    steps = rule.de_steps if algo == "mbde" else rule.adapt_cfg.inner_steps
    with torch.no_grad():
        for e in (1, 2):
            c = int(recent.count[e])
            x, y = normalised(model, obs[e, -c:], act[e, -c:], nxt[e, -c:])
            members = []
            for b in range(MEMBERS):
                with torch.enable_grad():
                    p = {n: v[b].detach().requires_grad_(True) for n, v in model.params().items()}
                    for _ in range(steps):
                        # count < M: the valid errors summed over M (inner_update's episode-start rule)
                        inner = (model.net(x, p)[..., :OBS] - y).pow(2).mean(-1).sum() / M
                        grads = torch.autograd.grad(inner, list(p.values()))
                        p = {n: p[n] - member_alpha(rule, n, b) * gr for n, gr in zip(list(p), grads)}
                members.append(model.net(model.inputs(s[e], a[e]), p)[..., :OBS])
            expected = s[e] + model.normalizer.denorm_delta(torch.stack(members).mean(0))
            torch.testing.assert_close(got[e], expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got[2], model.predict_mean(s[2:], a[2:])[0], atol=1e-3)  # adaptation moved it


def test_sampled_rows_keep_their_member_with_adapted_weights():
    """TS-inf with per-environment adapted members: row r of environment e uses member r mod B."""
    rule = ensemble_rule(dtype=torch.float32)
    model = rule.model
    assert isinstance(model, EnsembleDynamics)
    with torch.no_grad():  # negligible variance: a sample is its member's mean
        model.min_logvar.fill_(-40.0)
        model.max_logvar.fill_(-39.0)
    E, R = 2, 7  # R not a multiple of B: the padding must not shift the binding
    obs, act, nxt = segments(E, M, torch.float32, seed=1)
    recent = Window(obs, act, nxt, torch.tensor([M, 3]))
    s, a = torch.randn(E, R, OBS), torch.rand(E, R, ACT) * 2 - 1
    sampled = rule.predictor(recent)(s, a)
    adapted = online_params(model, recent, rule.step_size, rule.adapt_cfg.inner_steps)
    assert adapted is not None and adapted["w0"].shape[:2] == (MEMBERS, E)
    with torch.no_grad():
        for e in range(E):
            for r in range(R):
                b = r % MEMBERS
                member = {n: v[b, e] for n, v in adapted.items()}
                mean = model.net(model.inputs(s[e, r], a[e, r]), member)[:OBS]
                torch.testing.assert_close(
                    sampled[e, r], s[e, r] + model.normalizer.denorm_delta(mean), rtol=1e-4, atol=1e-4
                )


def fit_against_pe_ts(algo: str, buf, seg: Window, model_cfg, fit_cfg, adapt_cfg) -> tuple[float, dict, dict]:
    """PE-TS's held-out error after the M past transitions of ``seg``, and ``algo``'s errors before /
    after adaptation with its fit metrics (both fitted from the same seed on ``buf``)."""
    past = adapt_cfg.past
    torch.manual_seed(0)
    pets = make_rule("mb", 4, 2, model_cfg, fit_cfg, adapt_cfg)
    pets.fit(buf, np.random.default_rng(0), progress=False)
    pets_err = pets.segment_errors(seg, past)["after"]
    torch.manual_seed(0)
    rule = make_rule(algo, 4, 2, model_cfg, fit_cfg, adapt_cfg)
    metrics = rule.fit(buf, np.random.default_rng(0), progress=False)
    err = rule.segment_errors(seg, past)
    print(f"PE-TS {pets_err:.3f}  PE-TS + {algo} before {err['before']:.3f} after {err['after']:.3f}  {metrics}")
    return pets_err, err, metrics


def test_pe_ts_grbal_adapts_to_unseen_tasks_far_better_than_pe_ts():
    """The synthetic family of the GrBAL tests: the meta-trained ensemble's adapted error on unseen
    tasks is far below the plain ensemble's (PE-TS) and its own unadapted error."""
    fam = LinearTaskFamily()
    buf = fam.make_buffer(120, 60, np.random.default_rng(0))
    seg = fam.make_segments(fam.make_test_tasks(10), 8, 32, np.random.default_rng(1))
    model_cfg = ModelConfig(hidden=[64, 64], ensemble=3)
    fit_cfg = FitConfig(max_epochs=12, patience=4, max_steps_per_epoch=100, segment_epoch="starts")
    adapt_cfg = AdaptationConfig(past=16, future=16, inner_lr=0.1, step_size="scalar")
    pets_err, err, metrics = fit_against_pe_ts("grbal", buf, seg, model_cfg, fit_cfg, adapt_cfg)
    assert metrics["fit/val_loss_after_adapt"] < 0.5 * metrics["fit/val_loss_before_adapt"]
    assert err["after"] < 0.4 * pets_err and err["after"] < 0.4 * err["before"]


def test_mbde_on_an_ensemble_chooses_its_step_on_held_out_training_episodes():
    fam = LinearTaskFamily()
    buf = fam.make_buffer(40, 40, np.random.default_rng(0))
    cfg = AdaptationConfig(past=8, future=8, de_select="validation")
    torch.manual_seed(0)
    rule = make_rule("mbde", 4, 2, ModelConfig(hidden=[32], ensemble=3), FitConfig(max_epochs=5), cfg)
    metrics = rule.fit(buf, np.random.default_rng(0), progress=False)
    assert metrics["fit/val_loss_after_adapt"] <= metrics["fit/val_loss_before_adapt"]
    assert metrics["fit/de_lr"] >= 0 and metrics["fit/de_steps"] >= 1
    state = rule.state_dict()
    assert state["dynamic_eval"] == {"lr": rule.de_lr, "steps": rule.de_steps}


def test_ensemble_checkpoints_of_the_first_layout_still_load():
    """Ensembles were first stored as ``weights.i (B, in, out)`` / ``biases.i (B, 1, out)``."""
    cfg = ModelConfig(hidden=[8], ensemble=MEMBERS)
    torch.manual_seed(0)
    model = EnsembleDynamics(OBS, ACT, cfg)
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("net.")}
    for i in range(2):
        old[f"weights.{i}"] = model.state_dict()[f"net.w{i}"]
        old[f"biases.{i}"] = model.state_dict()[f"net.b{i}"].unsqueeze(1)
    fresh = EnsembleDynamics(OBS, ACT, cfg)
    fresh.load_state_dict(old)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


# --- PE-TS + ReBAL ------------------------------------------------------------------------------------
def ensemble_rebal(dtype=torch.float64):
    torch.manual_seed(0)
    cfg = AdaptationConfig(past=M, future=K, rnn_hidden=6)
    rule = make_rule("rebal", OBS, ACT, ModelConfig(hidden=[8, 8], ensemble=MEMBERS), FitConfig(), cfg)
    rule.module.to(dtype)
    with torch.no_grad():  # a head with non-trivial outputs (its last layer starts near zero)
        for p in rule.model.head_net.parameters():
            p.normal_(0.0, 0.5)
    return rule


def member_head(model, b: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Reference: member b's head alone on inputs ``x (..., in)`` with states ``h (..., H)``."""
    net, n_in = model.head_net, OBS + ACT
    z = x @ net.w0[b, :n_in] + (h @ net.w0[b, n_in:] + net.b0[b]).unsqueeze(-2)
    for i in range(1, net.num_layers):
        z = net.activation(z) @ getattr(net, f"w{i}")[b] + getattr(net, f"b{i}")[b]
    return z


def test_ensemble_rebal_loss_equals_a_per_member_reference():
    rule = ensemble_rebal()
    model = rule.model
    S = 2
    obs, act, nxt = segments(MEMBERS * S, M + K)
    params = [p for p in model.parameters() if p.requires_grad]
    loss = model.segment_loss(obs, act, nxt, M)
    h = model.hidden(model.read(obs[:, :M], act[:, :M], nxt[:, :M])).view(MEMBERS, S, -1)
    x = model.inputs(obs[:, M:], act[:, M:]).view(MEMBERS, S, K, -1)
    out = torch.stack([member_head(model, b, x[b], h[b]) for b in range(MEMBERS)])
    mean, logvar = model.gaussian(out)
    target = model.target(obs[:, M:], nxt[:, M:]).view(MEMBERS, S, K, -1)
    reference = ((mean - target).pow(2) * torch.exp(-logvar) + logvar).mean()
    reference = reference + LOGVAR_BOUND_WEIGHT * (model.max_logvar.sum() - model.min_logvar.sum())
    torch.testing.assert_close(loss, reference, rtol=1e-10, atol=1e-12)
    for g, r in zip(torch.autograd.grad(loss, params), torch.autograd.grad(reference, params)):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


def test_ensemble_rebal_samples_each_row_from_its_member_reading_the_same_state():
    rule = ensemble_rebal(torch.float32)
    model = rule.model
    with torch.no_grad():
        model.min_logvar.fill_(-40.0)
        model.max_logvar.fill_(-39.0)
    E, R = 2, 7
    obs, act, nxt = segments(E, M, torch.float32, seed=1)
    recent = Window(obs, act, nxt, torch.tensor([M, 2]))
    s, a = torch.randn(E, R, OBS), torch.rand(E, R, ACT) * 2 - 1
    with torch.no_grad():
        sampled = rule.predictor(recent)(s, a)
        mean = rule.mean_predictor(recent)(s, a)
        h = rule.adapted_hidden(recent)
        x = model.inputs(s, a)
        members = torch.stack([member_head(model, b, x, h)[..., :OBS] for b in range(MEMBERS)])  # (B, E, R, d)
    denorm = model.normalizer.denorm_delta
    for e in range(E):
        for r in range(R):
            torch.testing.assert_close(
                sampled[e, r], s[e, r] + denorm(members[r % MEMBERS, e, r]), rtol=1e-4, atol=1e-4
            )
    torch.testing.assert_close(mean, s + denorm(members.mean(0)), rtol=1e-4, atol=1e-4)


def test_pe_ts_rebal_adapts_to_unseen_tasks_far_better_than_pe_ts():
    fam = LinearTaskFamily()
    buf = fam.make_buffer(60, 50, np.random.default_rng(0))
    seg = fam.make_segments(fam.make_test_tasks(8), 16, 16, np.random.default_rng(1))
    model_cfg = ModelConfig(hidden=[64, 64], ensemble=3)
    fit_cfg = FitConfig(lr=3e-3, max_epochs=30, patience=5, max_steps_per_epoch=50)
    adapt_cfg = AdaptationConfig(past=8, future=8, rnn_hidden=32, short_past=0.25)
    pets_err, err, _ = fit_against_pe_ts("rebal", buf, seg, model_cfg, fit_cfg, adapt_cfg)
    assert err["after"] < 0.4 * pets_err and err["after"] < 0.4 * err["before"]


def test_ensemble_rebal_refuses_whole_trajectory_training():
    with pytest.raises(ValueError, match="rnn_training=segments"):
        make_rule("rebal", OBS, ACT, ModelConfig(ensemble=3), FitConfig(), AdaptationConfig(rnn_training="tbptt"))
