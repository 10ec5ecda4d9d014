"""The shared training loop: early stopping, the per-fit step budget and bf16 training steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learn2adapt.adaptation import make_rule
from learn2adapt.adaptation.base import fused_adam
from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.adaptation.grbal import GrBAL
from learn2adapt.errors import ConfigError
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.fitting import fit_early_stopping
from learn2adapt.run.presets import preset_config
from tests.synthetic_tasks import LinearTaskFamily

pytestmark = pytest.mark.usefixtures("one_thread")


class Regression:
    """y = x A + noise on 256 points, fitted by a linear layer; batches of 32 (8 a full epoch)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 16, generator=g)
        # The noise sets a loss floor (0.25) far above bf16's rounding, as real data do.
        self.y = self.x @ torch.randn(16, 4, generator=g) + 0.5 * torch.randn(256, 4, generator=g)
        torch.manual_seed(0)
        self.net = torch.nn.Linear(16, 4)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=5e-2)
        self.val_calls, self.matmul_dtypes = 0, set()

    def epoch(self):
        return torch.randperm(256).split(32)

    def batch_loss(self, idx: torch.Tensor) -> torch.Tensor:
        out = self.net(self.x[idx])
        self.matmul_dtypes.add(out.dtype)
        return (out.float() - self.y[idx]).pow(2).mean()

    def val_loss(self) -> float:
        self.val_calls += 1
        with torch.no_grad():
            return float((self.net(self.x) - self.y).pow(2).mean())

    def fit(self, cfg: FitConfig):
        return fit_early_stopping(self.opt, self.epoch, self.batch_loss, self.val_loss, cfg, progress=False)


def test_a_step_budget_ends_the_fit_inside_an_epoch_and_validates_once_more() -> None:
    task = Regression()
    result = task.fit(FitConfig(max_epochs=50, patience=50, max_steps=11))
    # 8 steps a full epoch: the budget of 11 ends the second epoch after 3 of its steps.
    assert (result.steps, result.epochs) == (11, 2)
    assert task.val_calls == 2  # after each (partial) epoch; `epoch` needs no score of the model before
    assert result.val_loss == min(v for _, v in result.history)
    task = Regression()
    task.fit(FitConfig(max_epochs=50, patience=50, max_steps=11, select="prefit"))
    assert task.val_calls == 1 + 2  # prefit also scores the model before the fit


def test_without_a_budget_early_stopping_alone_ends_the_fit() -> None:
    task = Regression()
    result = task.fit(FitConfig(max_epochs=3, patience=50))
    assert (result.steps, result.epochs) == (24, 3)


@pytest.mark.parametrize(
    ("select", "kept", "epochs"),
    [("prefit", 0, 3), ("epoch", 1, 4), ("last", 6, 6)],
)
def test_fit_select_decides_whether_a_fit_that_worsens_validation_is_undone(select, kept, epochs) -> None:
    """Training pulls w to 1, validation wants 0 (a new episode the old data do not predict):
    every epoch scores worse than the model before the fit, and worse than the one before it."""
    w = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.SGD([w], lr=0.1)
    result = fit_early_stopping(
        opt,
        lambda: [None, None],
        lambda _: (w - 1.0) ** 2,
        lambda: float(w.detach() ** 2),
        FitConfig(max_epochs=6, patience=3, select=select),
        progress=False,
    )
    assert (result.kept_epoch, result.epochs, result.steps) == (kept, epochs, 2 * epochs)
    # Each SGD step moves w 20% of the way to 1: after k steps w = 1 - 0.8^k.
    assert float(w.detach()) == pytest.approx(1.0 - 0.8 ** (2 * kept))
    assert result.val_loss == pytest.approx(float(w.detach()) ** 2)
    assert result.metrics()["fit/kept_epoch"] == kept


def test_bf16_training_steps_run_the_matmuls_in_bf16_and_keep_fp32_weights() -> None:
    fp32, bf16 = Regression(), Regression()
    r32 = fp32.fit(FitConfig(max_epochs=20, patience=50))
    r16 = bf16.fit(FitConfig(max_epochs=20, patience=50, precision="bf16"))
    assert fp32.matmul_dtypes == {torch.float32} and bf16.matmul_dtypes == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in bf16.net.parameters())
    first = r32.history[0][1]
    # Both fits learn the map (validation, in fp32, falls far below its first value) ...
    assert r32.val_loss < 0.1 * first and r16.val_loss < 0.1 * first
    # ... along nearly the same curve.
    for (_, v32), (_, v16) in zip(r32.history, r16.history):
        assert v16 == pytest.approx(v32, rel=0.05)


def test_bf16_meta_training_follows_the_fp32_curve_on_the_synthetic_family() -> None:
    fam = LinearTaskFamily()
    buf = fam.make_buffer(60, 60, np.random.default_rng(0))
    curves = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        fit = FitConfig(max_epochs=4, patience=10, max_steps_per_epoch=40, segment_epoch="starts", precision=precision)
        adapt = AdaptationConfig(past=16, future=16, inner_lr=0.1, step_size="scalar")
        rule = GrBAL(fam.obs_dim, fam.act_dim, ModelConfig(hidden=[64, 64]), fit, adapt)
        metrics = rule.fit(buf, np.random.default_rng(0), progress=False)
        curves[precision] = metrics
    for key in ("fit/val_loss_before_adapt", "fit/val_loss_after_adapt"):
        assert curves["bf16"][key] == pytest.approx(curves["fp32"][key], rel=0.15), key
    # The adaptation helps as much in bf16: the inner step's correction is not lost to rounding.
    gain = {p: m["fit/val_loss_before_adapt"] - m["fit/val_loss_after_adapt"] for p, m in curves.items()}
    # Measured (seed 0, stable validation split): before 0.223, gain 0.0196 (8.8%) in fp32.
    assert gain["fp32"] > 0.05 * curves["fp32"]["fit/val_loss_before_adapt"]
    assert gain["bf16"] == pytest.approx(gain["fp32"], rel=0.3), gain


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("precision", "fp16", "fit.precision must be one of fp32, bf16"),
        ("max_steps", -1, "fit.max_steps must be >= 0"),
        ("weight_decay", -1e-4, "fit.weight_decay must be a finite number >= 0"),
        ("select", "best", "fit.select must be one of prefit, epoch, last"),
    ],
)
def test_bad_fit_options_are_refused_with_what_to_write(option, value, message) -> None:
    cfg = preset_config("learn2adapt/PendulumVaried-v0", "quick", "grbal")
    setattr(cfg.fit, option, value)
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


@pytest.mark.parametrize(
    ("algo", "ensemble", "rnn_training"),
    [
        ("mb", 1, "segments"),
        ("mb", 3, "segments"),
        ("mbde", 3, "segments"),
        ("grbal", 3, "segments"),
        ("rebal", 1, "tbptt"),
        ("rebal", 3, "segments"),
        ("mole", 1, "segments"),
    ],
)
def test_every_rule_trains_in_bf16_and_keeps_fp32_weights(algo, ensemble, rnn_training) -> None:
    fam = LinearTaskFamily()
    buf = fam.make_buffer(20, 60, np.random.default_rng(0))
    fit = FitConfig(max_epochs=2, max_steps_per_epoch=3, precision="bf16", segment_epoch="starts")
    adapt = AdaptationConfig(past=8, future=8, rnn_training=rnn_training)
    rule = make_rule(algo, fam.obs_dim, fam.act_dim, ModelConfig(hidden=[32, 32], ensemble=ensemble), fit, adapt)
    metrics = rule.fit(buf, np.random.default_rng(0), progress=False)
    assert 0 < metrics["fit/steps"] <= 6 and np.isfinite(metrics["fit/val_loss"])
    assert all(p.dtype == torch.float32 for p in rule.module.parameters())


@pytest.mark.parametrize(("algo", "ensemble"), [("mb", 1), ("mb", 3), ("grbal", 3)])
def test_weight_decay_penalises_the_weight_matrices_alone_and_shrinks_them(algo: str, ensemble: int) -> None:
    fam = LinearTaskFamily()
    buf = fam.make_buffer(20, 60, np.random.default_rng(0))
    norms = {}
    for decay in (0.0, 0.05):
        torch.manual_seed(0)
        fit = FitConfig(max_epochs=3, max_steps_per_epoch=20, patience=3, weight_decay=decay, segment_epoch="starts")
        model = ModelConfig(hidden=[32, 32], ensemble=ensemble)
        rule = make_rule(algo, fam.obs_dim, fam.act_dim, model, fit, AdaptationConfig(past=8, future=8))
        matrices = [p for n, p in rule.module.named_parameters() if n.rsplit(".", 1)[-1] in ("w0", "w1", "w2")]
        groups = rule.begin_fit().param_groups
        if decay:
            assert [g["weight_decay"] for g in groups] == [decay, 0]
            assert len(groups[0]["params"]) == 3 and all(any(p is w for w in matrices) for p in groups[0]["params"])
            assert sum(len(g["params"]) for g in groups) == len(list(rule.module.parameters()))
        else:
            assert len(groups) == 1 and groups[0]["weight_decay"] == 0
        rule.fit(buf, np.random.default_rng(0), progress=False)
        norms[decay] = sum(float(w.detach().norm()) for w in matrices)
    assert norms[0.05] < 0.95 * norms[0.0], norms


@pytest.mark.skipif(fused_adam(torch.device("cpu")) is None, reason="this torch has no fused CPU Adam")
def test_fits_use_fused_adam_with_the_default_arithmetic_and_old_optimizer_states_load_into_it() -> None:
    fam = LinearTaskFamily()
    buf = fam.make_buffer(20, 60, np.random.default_rng(0))
    fit = FitConfig(max_epochs=2, max_steps_per_epoch=10, segment_epoch="starts")
    weights = {}
    for fused in (True, False):
        torch.manual_seed(0)
        rule = make_rule("grbal", fam.obs_dim, fam.act_dim, ModelConfig(hidden=[32, 32]), fit, AdaptationConfig(past=8))
        opt = rule.begin_fit()
        assert all(g["fused"] for g in opt.param_groups)
        if not fused:  # an optimiser state as written before fused Adam, with torch's default kernel
            rule.optimizer = torch.optim.Adam(rule.module.parameters(), lr=fit.lr)
        rule.fit(buf, np.random.default_rng(0), progress=False)
        weights[fused] = [p.detach().clone() for p in rule.module.parameters()]
        state = rule.state_dict()
    for a, b in zip(weights[True], weights[False]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not any(g["fused"] for g in state["optimizer"]["param_groups"])
    rule.load_state_dict(state)
    assert rule.optimizer is not None and all(g["fused"] and g["foreach"] is None for g in rule.optimizer.param_groups)
