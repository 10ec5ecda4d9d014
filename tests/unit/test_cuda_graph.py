"""CUDA-graph rollouts (``planner.cuda_graph``): what decides graphing runs everywhere; the
replays themselves only where CUDA is (they are checked against eager plans there)."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from learn2adapt.adaptation import make_rule
from learn2adapt.adaptation.config import AdaptationConfig
from learn2adapt.envs import make_env
from learn2adapt.errors import ConfigError
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.dynamics import MLPDynamics
from learn2adapt.models.ensemble import EnsembleDynamics
from learn2adapt.planning import PLANNERS, make_planner
from learn2adapt.planning.cuda_graph import CallCapture, CaptureNotice, PlanGraphs, RolloutGraphs, storage_key
from learn2adapt.run.agent import MPCAgent
from learn2adapt.run.config import RunConfig
from learn2adapt.types import AdaptedPredictor, Window
from tests.synthetic_tasks import LinearTaskFamily


def needs_cuda(test):
    """A test of the ``gpu`` marker (``pytest -m gpu``, the device check's), skipped without CUDA."""
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")(test))


CHEETAH = "learn2adapt/HalfCheetahDisabledJoint-v0"


def _model(ensemble: int = 1) -> nn.Module:
    cfg = ModelConfig(hidden=[32, 32], activation="silu", ensemble=ensemble)
    torch.manual_seed(0)
    return EnsembleDynamics(17, 6, cfg) if ensemble > 1 else MLPDynamics(17, 6, cfg)


def test_storage_key_follows_replaced_tensors_not_in_place_updates():
    model = _model()
    key = storage_key(model.predict)
    assert key is not None and len(key) == len(list(model.parameters())) + len(list(model.buffers()))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)  # an optimiser step: same storage
    model.normalizer.fit(torch.randn(8, 17).numpy(), torch.randn(8, 6).numpy(), torch.randn(8, 17).numpy())
    assert storage_key(model.predict) == key
    model.net.w0 = nn.Parameter(model.net.w0.detach().clone())  # a new tensor: a graph would read the old one
    assert storage_key(model.predict) != key


def test_closures_and_functions_are_never_graphed():
    model = _model()

    def adapted(obs, act):  # what GrBAL and ReBAL hand the planner
        return model.predict(obs, act)

    assert storage_key(adapted) is None
    assert storage_key(torch.tanh) is None


def test_on_a_cpu_the_option_changes_nothing():
    model, env = _model(), make_env(CHEETAH)
    reward = env.unwrapped.reward_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1))
    actions = []
    for graph in (False, True):
        planner = make_planner("cem", -torch.ones(6), torch.ones(6), num_envs=2, seed=3, cuda_graph=graph)
        assert planner.graphs is None and planner.plan_graphs is None
        actions.append(torch.stack([planner.plan(model.predict, reward, obs) for _ in range(2)]))
    torch.testing.assert_close(actions[0], actions[1], rtol=0, atol=0)


def test_graphs_with_bf16_rollouts_are_refused_before_a_run_starts(monkeypatch):
    cfg = RunConfig(device="cpu")
    cfg.planner.cuda_graph, cfg.planner.precision = True, "bf16"
    cfg.validate()  # on a CPU the option is ignored
    monkeypatch.setattr("learn2adapt.run.config.check_device", lambda device: None)  # no GPU needed here
    cfg.device = "cuda"
    with pytest.raises(ConfigError, match="cuda_graph"):
        cfg.validate()
    cfg.planner.precision = "auto"  # fp32 on a GPU
    cfg.validate()


def test_replays_read_the_inputs_of_each_call_and_records_follow_the_storage():
    model, env = _model(), make_env(CHEETAH)
    reward = env.unwrapped.reward_fn
    planner = make_planner("rs", -torch.ones(6), torch.ones(6), num_envs=2, seed=0, horizon=5, num_candidates=16)
    graphs = RolloutGraphs(CallCapture())
    g = torch.Generator().manual_seed(2)
    rollout = lambda p, o, a: planner.evaluate(p, reward, o, a)  # noqa: E731
    for _ in range(3):  # new inputs each call: the replay must see them, not the recorded ones
        obs, actions = torch.randn(2, 17, generator=g), torch.rand(2, 16, 5, 6, generator=g) * 2 - 1
        eager = planner.evaluate(model.predict, reward, obs, actions).clone()
        replayed = graphs.run(rollout, model.predict, (reward, None), obs, actions)
        torch.testing.assert_close(replayed, eager, rtol=0, atol=0)
    assert (graphs.records, graphs.replays) == (1, 3)
    graphs.run(rollout, model.predict, (reward, None), obs, actions[:, :8])  # another shape: its own graph
    assert graphs.records == 2
    model.net.w0 = nn.Parameter(model.net.w0.detach() * 2.0)  # replaced: recorded again, and the new weights used
    eager = planner.evaluate(model.predict, reward, obs, actions).clone()
    torch.testing.assert_close(graphs.run(rollout, model.predict, (reward, None), obs, actions), eager)
    assert graphs.records == 3
    assert graphs.run(rollout, lambda o, a: model.predict(o, a), (reward, None), obs, actions) is None


def _adapted(model: nn.Module, scale: float) -> AdaptedPredictor:
    """Per-environment weights as GrBAL hands them to the planner: (E, *shape), new tensors each plan."""
    return AdaptedPredictor(
        model.predict, {k: (v * scale).expand(2, *v.shape).clone() for k, v in model.params().items()}
    )


def test_adapted_weights_are_copied_into_one_recording_per_shape():
    """GrBAL's and MOLe's predictors: new weight tensors every plan, one recording, each plan's weights used."""
    model, env = _model(), make_env(CHEETAH)
    reward = env.unwrapped.reward_fn
    planner = make_planner("rs", -torch.ones(6), torch.ones(6), num_envs=2, seed=0, horizon=5, num_candidates=16)
    graphs = RolloutGraphs(CallCapture())
    rollout = lambda p, o, a: planner.evaluate(p, reward, o, a)  # noqa: E731
    g = torch.Generator().manual_seed(4)
    obs, actions = torch.randn(2, 17, generator=g), torch.rand(2, 16, 5, 6, generator=g) * 2 - 1
    results = []
    for scale in (1.0, 0.5, -1.0):
        predict = _adapted(model, scale)
        assert storage_key(predict) == storage_key(model.predict)
        eager = planner.evaluate(predict, reward, obs, actions).clone()
        replayed = graphs.run(rollout, predict, (reward, None), obs, actions).clone()
        torch.testing.assert_close(replayed, eager, rtol=0, atol=0)
        results.append(replayed)
    assert (graphs.records, graphs.replays) == (1, 3)
    assert not torch.equal(results[0], results[2])  # the replay read each plan's weights, not the first's


@pytest.mark.parametrize("name", list(PLANNERS))
def test_every_planner_plans_the_same_with_recorded_adapted_rollouts(name):
    """The planner's own path (``planner.graphs`` set) with the CPU capture: plans equal eager plans."""
    model, env = _model(), make_env(CHEETAH)
    reward, done = env.unwrapped.reward_fn, env.unwrapped.termination_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1))
    plans = []
    for graphed in (False, True):
        planner = make_planner(name, -torch.ones(6), torch.ones(6), num_envs=2, seed=3, horizon=6, num_candidates=32)
        if graphed:
            planner.graphs = RolloutGraphs(CallCapture())
        plans.append(torch.stack([planner.plan(_adapted(model, s), reward, obs, done) for s in (1.0, 0.7, 1.3)]))
    assert planner.graphs.records >= 1 and planner.graphs.replays >= 3
    torch.testing.assert_close(plans[1], plans[0], rtol=0, atol=0)


# --- whole plans (CPU: CallCapture) --------------------------------------------------------------

#: Model kinds a whole plan is recorded for: a module's method, adapted weights, a sampling
#: ensemble, ReBAL's recurrent context (one model, and an ensemble of heads).
KINDS = ("mlp", "adapted", "ensemble", "recurrent", "recurrent_ensemble")


def _predictors(kind: str, steps: int, device: str = "cpu") -> list:
    """One predictor per plan: the same module method, or new adapted weights (GrBAL's) or a new
    recurrent context (ReBAL's, from a new window) every plan."""
    if kind.startswith("recurrent"):
        torch.manual_seed(0)
        cfg = ModelConfig(hidden=[32, 32], ensemble=5 if kind == "recurrent_ensemble" else 1)
        adapt = AdaptationConfig(past=8, future=4, rnn_hidden=16)
        rule = make_rule("rebal", 17, 6, cfg, FitConfig(), adapt, device)
        return [rule.predictor(w) for w in _windows(steps, envs=2, device=device)]
    model = _model(ensemble=5 if kind == "ensemble" else 1).to(device)
    if kind == "adapted":
        return [_adapted(model, s) for s in (1.0, 0.7, 1.3, 0.9, 1.1)[:steps]]
    return [model.predict] * steps


def _whole_plans(name: str, kind: str, recorded: bool, steps: int = 4, capture=None, device="cpu", **options):
    """Plans of ``steps`` control steps (an episode restarts in env 1 before the third) and the planner.

    Recorded: the whole plan with ``capture`` (on a CPU; default CallCapture), rollout graphs present
    too (unused); on CUDA, ``planner.cuda_graph=true``."""
    env = make_env(CHEETAH)
    reward, done = env.unwrapped.reward_fn, env.unwrapped.termination_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1)).to(device)
    if kind.endswith("ensemble"):
        options = {"particles": 5, "propagation": "ts1" if name == "cem" else "ts_inf", **options}
    low, high = -torch.ones(6, device=device), torch.ones(6, device=device)
    planner = make_planner(name, low, high, num_envs=2, seed=3, horizon=6, num_candidates=32, device=device,
                           cuda_graph=recorded, **options)  # fmt: skip
    if recorded and device == "cpu":
        planner.graphs = RolloutGraphs(CallCapture())
        planner.plan_graphs = PlanGraphs(capture or CallCapture())
    predictors = _predictors(kind, steps, device)
    torch.manual_seed(5)  # an ensemble's sampling draws from the default generator
    plans = []
    for step, predict in enumerate(predictors):
        if step == 2:
            planner.reset(torch.tensor([False, True], device=device))
        plans.append(planner.plan(predict, reward, obs, done))
        obs = obs + 0.1 * torch.randn(obs.shape, generator=torch.Generator().manual_seed(step)).to(device)
    return torch.stack(plans), planner


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(PLANNERS))
def test_every_planner_recorded_whole_plans_as_eager(name, kind):
    """The whole search recorded (sampling from the planner's generators, iterations, refits, the
    warm-start state carried in place): every plan, the state and the generators equal eager's."""
    eager, p0 = _whole_plans(name, kind, recorded=False)
    recorded, p1 = _whole_plans(name, kind, recorded=True)
    torch.testing.assert_close(recorded, eager, rtol=0, atol=0)
    assert p1.plan_graphs.failure is None and p1.plan_graphs.replays == 4
    assert p1.plan_graphs.records == 1  # new weights, a reset: the same recording
    assert p1.graphs.replays == 0  # inside a recorded plan the rollouts are plain code
    for g0, g1 in zip(p0.generators, p1.generators):  # recording drew nothing that stayed drawn
        assert torch.equal(g0.get_state(), g1.get_state())
    if name != "rs":
        torch.testing.assert_close(p1._mean, p0._mean, rtol=0, atol=0)
    if name == "icem":
        torch.testing.assert_close(p1._elites, p0._elites, rtol=0, atol=0)
        assert torch.equal(p1._has_elites, p0._has_elites)
    assert p1.last_work == p0.last_work and p1.num_fallbacks == p0.num_fallbacks


def test_recorded_plans_count_fallbacks_as_eager():
    """A model that blows up in one environment: the midpoint fallback and its count, replayed."""
    model = _model()
    with torch.no_grad():
        model.net.b0.fill_(float("nan"))
    reward = make_env(CHEETAH).unwrapped.reward_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1))
    counts, plans = [], []
    for recorded in (False, True):
        planner = make_planner("cem", -torch.ones(6), 0.5 * torch.ones(6), num_envs=2, seed=3, horizon=4,
                               num_candidates=16)  # fmt: skip
        if recorded:
            planner.plan_graphs = PlanGraphs(CallCapture())
        plans.append(torch.stack([planner.plan(model.predict, reward, obs) for _ in range(3)]))
        counts.append(planner.num_fallbacks)
    assert counts == [6, 6] and planner.plan_graphs.replays == 3
    torch.testing.assert_close(plans[1], plans[0], rtol=0, atol=0)
    assert torch.equal(plans[1], torch.full_like(plans[1], -0.25))  # the midpoint of [-1, 0.5]


def test_a_recorded_plan_follows_replaced_weights_and_new_shapes():
    model, env = _model(), make_env(CHEETAH)
    reward = env.unwrapped.reward_fn
    planners = [make_planner("cem", -torch.ones(6), torch.ones(6), seed=3, horizon=4, num_candidates=16)
                for _ in range(2)]  # fmt: skip
    planners[1].plan_graphs = PlanGraphs(CallCapture())
    g = torch.Generator().manual_seed(2)

    def both(num_envs: int) -> None:
        obs = torch.randn(num_envs, 17, generator=g)
        eager, recorded = (p.plan(model.predict, reward, obs) for p in planners)
        torch.testing.assert_close(recorded, eager, rtol=0, atol=0)

    both(2)
    both(2)
    graphs = planners[1].plan_graphs
    assert (graphs.records, graphs.replays) == (1, 2)
    both(3)  # another number of environments: its own state tensors and recording
    assert graphs.records == 2
    model.net.w0 = nn.Parameter(model.net.w0.detach() * 2.0)  # a replaced tensor: recorded again
    both(3)
    assert graphs.records == 3


def test_a_deadline_or_a_closure_plans_eagerly_with_one_notice():
    model, env = _model(), make_env(CHEETAH)
    reward = env.unwrapped.reward_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1))
    planner = make_planner("cem", -torch.ones(6), torch.ones(6), num_envs=2, seed=3, horizon=4, num_candidates=16)
    planner.graphs, planner.plan_graphs = RolloutGraphs(CallCapture()), PlanGraphs(CallCapture())
    planner.deadline = float("inf")
    with pytest.warns(CaptureNotice, match="deadline"):
        planner.plan(model.predict, reward, obs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CaptureNotice)  # one notice per planner and reason
        planner.plan(model.predict, reward, obs)
    assert planner.plan_graphs.replays == 0 and planner.graphs.replays == 2 * planner.iterations
    planner.deadline = None
    with pytest.warns(CaptureNotice, match="closure"):
        planner.plan(lambda o, a: model.predict(o, a), reward, obs)
    assert planner.plan_graphs.replays == 0


class _Failing:
    """A capture that runs the plan (changing the planner's state and generators) and then fails."""

    def __call__(self, fn, device, generators=()):
        fn()
        fn()
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")


@pytest.mark.parametrize("name", list(PLANNERS))
def test_a_failed_recording_leaves_no_trace_and_plans_eagerly(name):
    eager, _ = _whole_plans(name, "mlp", recorded=False)
    with pytest.warns(
        CaptureNotice,
        match=r"recording the whole plan failed \(RuntimeError: operation not permitted when stream is capturing\): plans",
    ):
        recorded, planner = _whole_plans(name, "mlp", recorded=True, capture=_Failing())
    assert planner.plan_graphs.failure.startswith("RuntimeError") and planner.plan_graphs.replays == 0
    assert planner.graphs.replays >= 4  # the rollouts are still recorded
    torch.testing.assert_close(recorded, eager, rtol=0, atol=0)


# --- the online adaptation step (CPU: CallCapture) ----------------------------------------------

#: Online rules and options whose step is recorded: GrBAL (plain, guarded, last layer only, a
#: learned step size, two steps, an ensemble) and MB+DE.
ONLINE = {
    "grbal": ("grbal", 1, {}),
    "guard": ("grbal", 1, {"guard": True}),
    "last_layer": ("grbal", 1, {"online_layers": 1}),
    "learned_alpha": ("grbal", 1, {"step_size": "scalar"}),
    "two_steps": ("grbal", 1, {"inner_steps": 2}),
    "ensemble": ("grbal", 3, {}),
    "mbde": ("mbde", 1, {"de_lr": 0.05}),
}


def _online_rule(variant: str, device: str = "cpu"):
    algo, ensemble, adapt = ONLINE[variant]
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=[32, 32], activation="silu", ensemble=ensemble)
    adapt_cfg = AdaptationConfig(past=8, future=4, inner_lr=0.05, **adapt)
    rule = make_rule(algo, 17, 6, cfg, FitConfig(), adapt_cfg, device)
    with torch.no_grad():  # a fitted normaliser, so nothing holds vacuously
        rule.normalizer.obs_std.uniform_(0.5, 2.0)
        rule.normalizer.delta_mean.normal_()
    return rule


def _windows(count: int, seed: int = 0, device: str = "cpu", envs: int = 3) -> list[Window]:
    """New (E, M=8) windows per step, from a full one to one at an episode start (E = 3)."""
    g = torch.Generator().manual_seed(seed)
    windows = [
        Window(torch.randn(envs, 8, 17, generator=g), torch.rand(envs, 8, 6, generator=g) * 2 - 1,
               torch.randn(envs, 8, 17, generator=g), torch.tensor([8, 3, 0][:envs]))
        for _ in range(count)
    ]  # fmt: skip
    return [Window(*(t.to(device) for t in (w.obs, w.act, w.next_obs, w.count))) for w in windows]


def _adapted_params(rule, windows: list[Window]) -> list[dict[str, torch.Tensor]]:
    return [rule.predictor(w).params for w in windows]


@pytest.mark.parametrize("variant", list(ONLINE))
def test_recorded_online_steps_equal_eager(variant):
    """The inner step (forward, gradient, update, guard) replayed over static windows: each
    control step's adapted weights (and guard counts) equal the eager step's bit for bit."""
    rule = _online_rule(variant)
    windows = _windows(3)
    eager = _adapted_params(rule, windows)
    checked, reverted = rule.guard_count.checked, rule.guard_count.reverted
    rule.guard_count.reset()
    rule.record_graphs(CallCapture())
    recorded = _adapted_params(rule, windows)
    assert (rule.online_graphs.records, rule.online_graphs.replays) == (1, 3)
    fitted = rule.model.params()
    for e, r in zip(eager, recorded):
        assert e.keys() == r.keys()
        for name in e:
            torch.testing.assert_close(r[name], e[name], rtol=0, atol=0)
            assert (r[name] is fitted[name]) == (e[name] is fitted[name])  # theta*'s own layers stay shared
    assert rule.guard_count.checked == checked
    assert (reverted is None and rule.guard_count.reverted is None) or torch.equal(rule.guard_count.reverted, reverted)


def test_recorded_online_steps_follow_the_weights_and_outlive_the_next_replay():
    rule = _online_rule("grbal")
    windows = _windows(2, seed=1)
    rule.record_graphs(CallCapture())
    first = rule.predictor(windows[0]).params
    kept = {k: v.clone() for k, v in first.items()}
    rule.predictor(windows[1])
    for name in first:  # a copy of the replay's output, not the output itself
        assert torch.equal(first[name], kept[name])
    with torch.no_grad():
        rule.model.net.w0.mul_(0.5)  # in place (an optimiser step): the same recording
        rule.step_size.alpha.fill_(0.1)
    recorded = rule.predictor(windows[0]).params
    assert rule.online_graphs.records == 1
    rule.model.net.w1 = nn.Parameter(rule.model.net.w1.detach() * 2.0)  # replaced: recorded again
    recorded = rule.predictor(windows[0]).params
    assert rule.online_graphs.records == 2
    graphs, rule.online_graphs = rule.online_graphs, None
    eager = rule.predictor(windows[0]).params
    for name in eager:
        torch.testing.assert_close(recorded[name], eager[name], rtol=0, atol=0)
    rule.online_graphs = graphs
    empty = Window(*(torch.zeros(3, 8, d) for d in (17, 6, 17)), torch.zeros(3, dtype=torch.long))
    assert rule.predictor(empty) == rule.model.predict  # no transition: theta*, nothing replayed
    assert rule.online_graphs.replays == 4


def test_a_failed_online_recording_adapts_eagerly_with_a_notice():
    rule = _online_rule("guard")
    windows = _windows(2)
    eager = _adapted_params(rule, windows)
    rule.record_graphs(_Failing())
    with pytest.warns(CaptureNotice, match="recording the online adaptation step failed"):
        recorded = _adapted_params(rule, windows)
    assert rule.online_graphs.failure is not None
    for e, r in zip(eager, recorded):
        for name in e:
            torch.testing.assert_close(r[name], e[name], rtol=0, atol=0)


def _agent_actions(algo: str, recorded: bool, device: str = "cpu") -> tuple[np.ndarray, object, object]:
    """Four control steps of an MPC agent (GrBAL or MB+DE, CEM) for two environments; recorded:
    with ``planner.cuda_graph`` (on a CPU: CallCapture graphs set by hand)."""
    env = make_env(CHEETAH)
    rule = _online_rule(algo, device)
    planner = make_planner("cem", env.action_space.low, env.action_space.high, num_envs=2, seed=3, horizon=5,
                           num_candidates=32, device=device, cuda_graph=recorded)  # fmt: skip
    if recorded and device == "cpu":
        planner.graphs, planner.plan_graphs = RolloutGraphs(CallCapture()), PlanGraphs(CallCapture())
    agent = MPCAgent(rule, planner, env.unwrapped.reward_fn, 2, env.unwrapped.termination_fn)
    g = np.random.default_rng(0)
    obs = g.normal(size=(2, 17)).astype(np.float32)
    steps = []
    for _ in range(4):
        act = agent.act(obs)
        nxt = (obs + 0.1 * g.normal(size=obs.shape)).astype(np.float32)
        agent.observe(obs, act, nxt)
        steps.append(act)
        obs = nxt
    return np.stack(steps), rule, planner


@pytest.mark.parametrize("algo", ["grbal", "mbde"])
def test_an_agent_with_recorded_plans_records_the_adaptation_and_acts_as_eager(algo):
    """adapt + plan as two replays (the agent hands the planner's capture to the rule)."""
    eager, rule, _ = _agent_actions(algo, recorded=False)
    assert rule.online_graphs is None
    recorded, rule, planner = _agent_actions(algo, recorded=True)
    assert rule.online_graphs is not None and rule.online_graphs.replays == 3  # the first step has no past
    assert planner.plan_graphs.replays == 4
    np.testing.assert_array_equal(recorded, eager)


# --- GrBAL's validation pass (CPU: CallCapture) --------------------------------------------------


def _val_batches(rule, sizes=(16, 16, 5), seed: int = 0) -> list[Window]:
    """Fixed validation chunks of M + K segments (the last one shorter, as a fit's are)."""
    g = torch.Generator().manual_seed(seed)
    length = rule.adapt_cfg.past + rule.adapt_cfg.future
    return [
        Window(torch.randn(n, length, 17, generator=g), torch.rand(n, length, 6, generator=g) * 2 - 1,
               torch.randn(n, length, 17, generator=g))
        for n in sizes
    ]  # fmt: skip


@pytest.mark.parametrize("variant", ["grbal", "ensemble", "learned_alpha"])
def test_a_recorded_validation_pass_scores_as_eager(variant):
    """The whole pass (every chunk's adapted and unadapted loss) is one replay over the chunks where
    they are; the scores equal the eager pass's exactly, and follow the weights a fit steps in place."""
    rule = _online_rule(variant)
    batches = _val_batches(rule)
    eager = rule.validation_losses(batches)
    rule.record_graphs(CallCapture())
    assert rule.validation_losses(batches) == eager
    with torch.no_grad():  # an optimiser step: in place
        for p in rule.module.parameters():
            p.mul_(0.9)
    recorded = rule.validation_losses(batches)
    graphs = rule.validation_graphs
    assert (graphs.records, graphs.replays) == (1, 2)
    graphs_, rule.validation_graphs = rule.validation_graphs, None
    assert recorded == rule.validation_losses(batches) != eager
    rule.validation_graphs = graphs_
    assert rule.validation_losses(batches, after=False)["before"] == recorded["before"]
    assert graphs.replays == 2  # the cheap pass without adaptation stays eager
    again = _val_batches(rule, seed=1)  # a new fit's chunks: recorded anew, the last graph dropped
    rule.validation_losses(again)
    assert graphs.records == 2 and len(graphs._graphs) == 1


def test_a_fit_with_a_recorded_validation_pass_is_the_eager_fit():
    fam = LinearTaskFamily(obs_dim=17, act_dim=6)
    buf = fam.make_buffer(12, 30, np.random.default_rng(0))
    metrics = []
    for recorded in (False, True):
        torch.manual_seed(0)
        fit = FitConfig(max_epochs=3, max_steps_per_epoch=5, patience=2)
        rule = make_rule("grbal", 17, 6, ModelConfig(hidden=[16, 16]), fit, AdaptationConfig(past=8, future=4))
        if recorded:
            rule.record_graphs(CallCapture())
        metrics.append(rule.fit(buf, np.random.default_rng(0), progress=False))
    assert rule.validation_graphs.records == 1 and rule.validation_graphs.replays >= 3
    assert metrics[1] == metrics[0]


# --- the acceptance benchmark -------------------------------------------------------------------


def test_the_capture_benchmark_compares_every_recording_with_its_eager_computation():
    """``bench --only capture`` at tiny sizes with CallCapture: every recorded figure's result is
    the eager one (its timings are not checked: they mean nothing on a CPU)."""
    from learn2adapt.benchmarks.capture import run

    assert "capture_skipped" in run(device="cpu")
    small = dict(num_candidates=16, horizon=4, hidden=(16, 16), past=4, future=4, val_segments=300)
    figures = run(rounds=1, repeats=1, capture=CallCapture(), **small)
    diffs = {k: v for k, v in figures.items() if k.endswith("_graph_diff")}
    assert len(diffs) == 9 and set(diffs.values()) == {0.0}
    assert figures["graph_failures"] == "none" and "rs_plan_rollout_graph_ms" in figures


# --- on a GPU ---------------------------------------------------------------------------------


def _plans(
    planner_name: str, model: nn.Module, graph: bool, steps: int = 3, whole: bool = True, **options
) -> tuple[torch.Tensor, object]:
    """Plans on CUDA (an episode restarts in env 1 before the third); ``whole=False``: rollouts only recorded."""
    env = make_env(CHEETAH)
    reward, done = env.unwrapped.reward_fn, env.unwrapped.termination_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1)).cuda()
    low, high = -torch.ones(6, device="cuda"), torch.ones(6, device="cuda")
    planner = make_planner(
        planner_name, low, high, num_envs=2, seed=3, device="cuda", horizon=6, num_candidates=64,
        cuda_graph=graph, **options,
    )  # fmt: skip
    if graph and not whole:
        planner.plan_graphs = None
    torch.cuda.manual_seed(5)  # an ensemble's sampling draws from the default generator
    out = []
    for step in range(steps):
        if step == 2:
            planner.reset(torch.tensor([False, True], device="cuda"))
        out.append(planner.plan(model.predict, reward, obs, done))
    return torch.stack(out), planner


@needs_cuda
@pytest.mark.parametrize("name", list(PLANNERS))
def test_graphed_rollouts_give_eager_plans(name):
    model = _model().cuda()
    eager, _ = _plans(name, model, graph=False)
    graphed, planner = _plans(name, model, graph=True, whole=False)
    assert planner.graphs.failure is None and planner.graphs.records >= 1 and planner.graphs.replays >= 3
    torch.testing.assert_close(graphed, eager, rtol=1e-5, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("name", list(PLANNERS))
def test_whole_plan_graphs_give_eager_plans(name):
    """One replay a plan: the planner's generators registered with the graph draw what eager draws."""
    model = _model().cuda()
    eager, p0 = _plans(name, model, graph=False, steps=4)
    graphed, p1 = _plans(name, model, graph=True, steps=4)
    graphs = p1.plan_graphs
    assert graphs.failure is None, graphs.failure
    assert (graphs.records, graphs.replays, p1.graphs.replays) == (1, 4, 0)
    torch.testing.assert_close(graphed, eager, rtol=1e-5, atol=1e-5)
    for g0, g1 in zip(p0.generators, p1.generators):  # each replay advanced them as a plan does
        assert torch.equal(g0.get_state(), g1.get_state())
    if name != "rs":
        torch.testing.assert_close(p1._mean, p0._mean, rtol=1e-5, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("name", list(PLANNERS))
def test_whole_plan_graphs_sample_trajectories_as_eager(name):
    """PE-TS: the ensemble's noise (default generator, registered by torch) replayed as drawn eagerly."""
    model = _model(ensemble=5).cuda()
    options = {"particles": 5, "propagation": "ts1" if name == "cem" else "ts_inf"}
    eager, _ = _plans(name, model, graph=False, **options)
    graphed, planner = _plans(name, model, graph=True, **options)
    assert planner.plan_graphs.failure is None and planner.plan_graphs.replays == 3
    torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("whole", [False, True])
def test_a_graph_sees_in_place_updates_and_is_recorded_again_for_replaced_tensors(whole):
    model, env = _model().cuda(), make_env(CHEETAH)
    reward, done = env.unwrapped.reward_fn, env.unwrapped.termination_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1)).cuda()
    low, high = -torch.ones(6, device="cuda"), torch.ones(6, device="cuda")
    eager, graphed = (
        make_planner("rs", low, high, num_envs=2, seed=3, device="cuda", horizon=6, num_candidates=64, cuda_graph=g)
        for g in (False, True)
    )
    if not whole:
        graphed.plan_graphs = None
    graphs = graphed.plan_graphs if whole else graphed.graphs

    def both() -> None:
        torch.testing.assert_close(graphed.plan(model.predict, reward, obs, done), eager.plan(model.predict, reward, obs, done),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip

    both()
    with torch.no_grad():
        model.net.w0.mul_(3.0)  # same storage: the recorded graph reads the new values
    both()
    assert (graphs.records, graphs.replays) == (1, 2)
    model.net.w1 = nn.Parameter(model.net.w1.detach() * -1.0)  # a new tensor: recorded again
    both()
    assert (graphs.records, graphs.replays) == (2, 3)


@needs_cuda
def test_graphed_trajectory_sampling_matches_eager_without_noise():
    model = _model(ensemble=5).cuda()
    with torch.no_grad():  # variance bounds far below zero: every member predicts its mean
        model.max_logvar.fill_(-60.0)
        model.min_logvar.fill_(-80.0)
    eager, _ = _plans("cem", model, graph=False, particles=5)
    graphed, planner = _plans("cem", model, graph=True, whole=False, particles=5)
    assert planner.graphs.replays >= 3
    torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-4)


@needs_cuda
def test_a_graphed_ensemble_still_samples():
    model = _model(ensemble=5).cuda()
    env = make_env(CHEETAH)
    obs = torch.zeros(1, 17, device="cuda")
    actions = torch.zeros(1, 8, 6, 6, device="cuda")
    planner = make_planner("rs", -torch.ones(6), torch.ones(6), num_envs=1, device="cuda", horizon=6, particles=5,
                           num_candidates=8, cuda_graph=True)  # fmt: skip
    first = planner.evaluate(model.predict, env.unwrapped.reward_fn, obs, actions).clone()
    second = planner.evaluate(model.predict, env.unwrapped.reward_fn, obs, actions).clone()
    assert planner.graphs.replays == 2
    assert not torch.equal(first, second)  # each replay draws new noise


@needs_cuda
@pytest.mark.parametrize("whole", [False, True])
@pytest.mark.parametrize("name", list(PLANNERS))
def test_graphed_adapted_plans_equal_eager_plans(name, whole):
    """GrBAL's and MOLe's per-environment weights on a GPU: one recording, each plan's weights."""
    model, env = _model().cuda(), make_env(CHEETAH)
    reward, done = env.unwrapped.reward_fn, env.unwrapped.termination_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1)).cuda()
    low, high = -torch.ones(6, device="cuda"), torch.ones(6, device="cuda")
    plans = []
    for graph in (False, True):
        planner = make_planner(
            name, low, high, num_envs=2, seed=3, device="cuda", horizon=6, num_candidates=64, cuda_graph=graph
        )
        if graph and not whole:
            planner.plan_graphs = None
        plans.append(torch.stack([planner.plan(_adapted(model, s), reward, obs, done) for s in (1.0, 0.7, 1.3)]))
    graphs = planner.plan_graphs if whole else planner.graphs
    assert graphs.failure is None and graphs.records == 1 and graphs.replays == 3
    torch.testing.assert_close(plans[1], plans[0], rtol=1e-5, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("variant", list(ONLINE))
def test_graphed_online_steps_equal_eager(variant):
    rule = _online_rule(variant, "cuda")
    windows = _windows(3, device="cuda")
    eager = _adapted_params(rule, windows)
    rule.record_graphs()
    graphed = _adapted_params(rule, windows)
    graphs = rule.online_graphs
    assert graphs.failure is None, graphs.failure
    assert (graphs.records, graphs.replays) == (1, 3)
    for e, g in zip(eager, graphed):
        for name in e:
            torch.testing.assert_close(g[name], e[name], rtol=1e-5, atol=1e-6)


@needs_cuda
@pytest.mark.parametrize("algo", ["grbal", "mbde"])
def test_a_graphed_agent_adapts_and_plans_as_eager(algo):
    """adapt + plan as two replays on a GPU (``planner.cuda_graph=true``: the agent records the step)."""
    eager, _, _ = _agent_actions(algo, recorded=False, device="cuda")
    graphed, rule, planner = _agent_actions(algo, recorded=True, device="cuda")
    assert rule.online_graphs.failure is None and rule.online_graphs.replays == 3
    assert planner.plan_graphs.failure is None and planner.plan_graphs.replays == 4
    np.testing.assert_allclose(graphed, eager, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(PLANNERS))
def test_whole_plan_graphs_of_every_model_kind_give_eager_plans(name, kind):
    """Every planner x model kind (MLP, adapted weights, ensemble, ReBAL's context and its ensemble)
    as one replay a plan on a GPU, the ensembles' noise included."""
    eager, p0 = _whole_plans(name, kind, recorded=False, device="cuda")
    graphed, p1 = _whole_plans(name, kind, recorded=True, device="cuda")
    graphs = p1.plan_graphs
    assert graphs.failure is None, graphs.failure
    assert (graphs.records, graphs.replays, p1.graphs.replays) == (1, 4, 0)
    torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-4)
    if name != "rs":
        torch.testing.assert_close(p1._mean, p0._mean, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("variant", ["grbal", "ensemble"])
def test_a_graphed_validation_pass_scores_as_eager(variant):
    rule = _online_rule(variant, "cuda")
    batches = [Window(w.obs.cuda(), w.act.cuda(), w.next_obs.cuda()) for w in _val_batches(rule)]
    eager = rule.validation_losses(batches)
    rule.record_graphs()
    graphed = rule.validation_losses(batches)
    assert rule.validation_graphs.failure is None and rule.validation_graphs.replays == 1
    assert graphed == pytest.approx(eager, rel=1e-5)
