"""The oneDNN inference path of the linear layers gives the results of the plain ``addmm`` path.

Every case runs the same call twice, once with the path and once under ``onednn.disabled()``:
bit-identical in bf16 with ReLU (and unfused activations), within one bf16 rounding with a fused
tanh or SiLU, equal to fp32 rounding in fp32 (another summation order).
"""

from __future__ import annotations

import pytest
import torch

from learn2adapt.adaptation import make_rule
from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.models import onednn
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.dynamics import MLPDynamics
from learn2adapt.models.ensemble import EnsembleDynamics
from learn2adapt.models.mlp import MLP, linear
from learn2adapt.planning import make_planner

pytestmark = pytest.mark.skipif(
    not (onednn.available(torch.float32) and onednn.available(torch.bfloat16)),
    reason="this torch build or processor has no oneDNN fused linear in fp32 and bf16",
)


def both(fn):
    """``fn()`` with the oneDNN path, then without it."""
    with torch.no_grad():
        fast = fn()
        with onednn.disabled():
            plain = fn()
    return fast, plain


def close(a: torch.Tensor, b: torch.Tensor, exact_bf16: bool = True) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype == torch.bfloat16 and exact_bf16:
        assert torch.equal(a, b)
    elif a.dtype == torch.bfloat16:  # a fused tanh / SiLU rounds once, the plain path twice: 1 ulp
        torch.testing.assert_close(a, b, rtol=8e-3, atol=8e-3)
    else:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh", "silu", "elu"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_mlp_with_shared_weights(activation: str, precision: str) -> None:
    torch.manual_seed(0)
    net = MLP(23, 17, [64, 64], activation)
    x = torch.randn(3, 50, 23)

    def run() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            return net(x)

    with torch.no_grad():
        assert onednn.usable(x, net.w0)
    close(*both(run), exact_bf16=activation in ("relu", "elu"))


@pytest.mark.parametrize("lead", [(4,), (5, 4)])
def test_batched_weights_in_fp32(lead: tuple[int, ...]) -> None:
    """Per-environment weights ``(E, in, out)`` and adapted ensemble weights ``(B, E, in, out)``."""
    torch.manual_seed(0)
    w, b = torch.randn(*lead, 32, 16), torch.randn(*lead, 16)
    x = torch.randn(*lead, 30, 32)
    with torch.no_grad():
        assert onednn.usable(x, w)
    close(*both(lambda: linear(x, w, b, "relu")))


@pytest.mark.parametrize("activation", ["silu", "elu"])
def test_mlp_with_batched_weights_runs_group_by_group(activation: str) -> None:
    """An ensemble's MLP (member weights are parameters, packed per member) and the same MLP with
    adapted weights ``(B, E, in, out)`` (plain tensors): every layer of a group before the next
    group; an activation oneDNN cannot fuse (ELU) is applied after each layer."""
    torch.manual_seed(0)
    net = MLP(23, 34, [64, 64], activation, members=5)
    x = torch.randn(5, 2, 40, 23)
    close(*both(lambda: net(x)))
    adapted = {name: p.detach().unsqueeze(1).repeat(1, 2, *([1] * (p.dim() - 1))) for name, p in net.named_parameters()}
    adapted = {name: p + 0.01 * torch.randn_like(p) for name, p in adapted.items()}
    out, plain = both(lambda: net(x, adapted))
    close(out, plain)
    with torch.no_grad():
        assert not torch.allclose(out, net(x))  # each environment used its own weights
    keys = {ident for (ident, _) in onednn._packed}
    assert id(net.w0) in keys and id(adapted["w0"]) not in keys


def test_packed_member_weights_follow_an_optimiser_step() -> None:
    torch.manual_seed(0)
    model = EnsembleDynamics(17, 6, ModelConfig(hidden=[32, 32], ensemble=3))
    obs, act = torch.randn(20, 17), torch.randn(20, 6)
    with torch.no_grad():
        first = model.predict_mean(obs, act)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    member_rows = (t.expand(3, *t.shape) for t in (obs, act, obs + 1.0))
    model.nll(*member_rows).backward()
    opt.step()
    after, plain = both(lambda: model.predict_mean(obs, act))
    close(after, plain)
    assert not torch.allclose(after, first)


@pytest.mark.parametrize("ensemble", [1, 3])
def test_packed_weights_follow_the_rules_own_optimiser_steps(ensemble) -> None:
    """A rule's Adam may be the fused kernel, which writes the weights without moving their
    version counters: the rule's step hook must still make the packed copies stale."""
    torch.manual_seed(0)
    rule = make_rule("mb", 17, 6, ModelConfig(hidden=[32, 32], ensemble=ensemble), FitConfig(), AdaptationConfig())
    obs, act = torch.randn(20, 17), torch.randn(20, 6)
    model = rule.model
    predict = model.predict_mean if ensemble > 1 else model.predict  # no sampling noise
    with torch.no_grad():
        first = predict(obs, act)
    opt = rule.begin_fit()
    for p in rule.module.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    after, plain = both(lambda: predict(obs, act))
    close(after, plain)
    assert not torch.allclose(after, first)


def test_batched_weights_in_bf16_only_as_parameters() -> None:
    """In bf16, an ensemble's member weights (parameters, packed once) take the path; other batched
    weights that are not marked reused stay on ``baddbmm``."""
    torch.manual_seed(0)
    net = MLP(32, 16, [24], "silu", members=4)
    x = torch.randn(4, 30, 32)
    adapted = {name: p.detach().clone() for name, p in net.named_parameters()}

    def run(params=None) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x, params)

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert onednn.usable(x, net.w0)
        assert not onednn.usable(x, adapted["w0"])
        assert onednn.usable(x, adapted["w0"][0])  # shared weights do take the path in bf16
    out, plain = both(run)
    close(out, plain, exact_bf16=False)
    assert out.dtype == torch.bfloat16 and out.shape == (4, 30, 16)
    close(*both(lambda: run(adapted)))


def test_adapted_weights_marked_reused_are_packed_once_and_follow_changes() -> None:
    """Per-environment weights marked reused (GrBAL's, once per plan) take the packed path in bf16
    with the plain path's results, and a changed or new tensor is never served a stale packing."""
    torch.manual_seed(0)
    net = MLP(32, 16, [24], "relu")
    x = torch.randn(3, 30, 32)
    adapted = {name: p.detach().unsqueeze(0).repeat(3, *([1] * p.dim())) for name, p in net.named_parameters()}
    adapted = {name: v + 0.01 * torch.randn_like(v) for name, v in adapted.items()}
    onednn.mark_reused(adapted.values())

    def run() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x, adapted)

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert onednn.usable(x, adapted["w0"])
        assert not onednn.usable(x, adapted["w0"].clone())  # an unmarked copy stays on baddbmm
    first, plain = both(run)
    close(first, plain)
    with torch.no_grad():
        adapted["w1"].mul_(-1.0)  # in place: the version counter moves, the packing is redone
    changed, plain = both(run)
    close(changed, plain)
    assert not torch.equal(changed, first)


def test_a_transposed_input_and_both_precisions_on_one_model() -> None:
    """A non-contiguous input; a model planned in fp32 and bf16 in turn (the bf16 check) keeps a
    packed copy per dtype."""
    torch.manual_seed(0)
    net = MLP(24, 8, [32])
    x = torch.randn(24, 10).t()
    assert not x.is_contiguous()
    close(*both(lambda: net(x)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        net(x)
    keys = {dtype for (ident, dtype) in onednn._packed if ident == id(net.w0)}
    assert keys == {torch.float32, torch.bfloat16}


def test_a_weight_view_is_not_packed() -> None:
    """A slice of a parameter (ReBAL's head reads one) is used as it is, not cached."""
    torch.manual_seed(0)
    net = MLP(40, 8, [32])
    x = torch.randn(10, 24)
    before = len(onednn._packed)
    close(*both(lambda: linear(x, net.w0[16:, :], net.b0)))
    assert len(onednn._packed) == before


def test_packed_weights_follow_an_optimiser_step() -> None:
    torch.manual_seed(0)
    model = MLPDynamics(17, 6, ModelConfig(hidden=[32, 32]))
    obs, act = torch.randn(20, 17), torch.randn(20, 6)
    with torch.no_grad():
        first = model.predict(obs, act)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.loss(obs, act, obs + 1.0).backward()
    opt.step()
    after, plain = both(lambda: model.predict(obs, act))
    close(after, plain)
    assert not torch.allclose(after, first)  # the packed copy was not reused


def test_with_gradients_the_plain_path_runs() -> None:
    torch.manual_seed(0)
    net = MLP(8, 4, [16])
    x = torch.randn(5, 8)
    assert not onednn.usable(x, net.w0)
    net(x).sum().backward()
    assert net.w0.grad is not None and net.w0.grad.abs().sum() > 0


def test_ensemble_plan_is_unchanged() -> None:
    """A PE-TS plan (batched member weights in fp32, sampled next states) picks the same actions."""
    torch.manual_seed(0)
    model = EnsembleDynamics(17, 6, ModelConfig(hidden=[32, 32], ensemble=5))
    low, high = -torch.ones(6), torch.ones(6)
    obs = torch.randn(3, 17)

    def plan() -> torch.Tensor:
        planner = make_planner("rs", low, high, num_envs=3, horizon=5, num_candidates=200, particles=5)
        gen = torch.Generator().manual_seed(0)

        def reward(s: torch.Tensor, a: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
            return s2[..., 8] - 0.1 * a.square().sum(-1)

        return planner.plan(lambda s, a: model.predict(s, a, generator=gen), reward, obs)

    fast, plain = both(plan)
    close(fast, plain)


def test_linear_rate_is_measured_through_the_models_layer() -> None:
    from learn2adapt.benchmarks.timing import linear_gflops

    for dtype in (torch.float32, torch.bfloat16):
        rate = linear_gflops(size=64, repeats=2, dtype=dtype)
        assert 0 < rate < float("inf")


def test_a_dtype_the_processor_lacks_takes_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onednn, "available", lambda dtype=torch.float32: dtype == torch.float32)
    torch.manual_seed(0)
    net = MLP(8, 4, [16])
    x = torch.randn(5, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn.usable(x, net.w0)
        out = net(x)
    with torch.no_grad():
        assert onednn.usable(x, net.w0)
    assert out.dtype == torch.bfloat16
