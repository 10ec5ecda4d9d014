"""CUDA-graph rollouts (``planner.cuda_graph``): what decides graphing runs everywhere; the
replays themselves only where CUDA is (they are checked against eager plans there)."""

import pytest
import torch
from torch import nn

from learn2adapt.envs import make_env
from learn2adapt.errors import ConfigError
from learn2adapt.models.config import ModelConfig
from learn2adapt.models.dynamics import MLPDynamics
from learn2adapt.models.ensemble import EnsembleDynamics
from learn2adapt.planning import PLANNERS, make_planner
from learn2adapt.planning.cuda_graph import CallCapture, RolloutGraphs, storage_key
from learn2adapt.run.config import RunConfig
from learn2adapt.types import AdaptedPredictor


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
        assert planner.graphs is None
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


# --- on a GPU ---------------------------------------------------------------------------------


def _plans(planner_name: str, model: nn.Module, graph: bool, steps: int = 3, **options) -> tuple[torch.Tensor, object]:
    env = make_env(CHEETAH)
    reward, done = env.unwrapped.reward_fn, env.unwrapped.termination_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1)).cuda()
    low, high = -torch.ones(6, device="cuda"), torch.ones(6, device="cuda")
    planner = make_planner(
        planner_name, low, high, num_envs=2, seed=3, device="cuda", horizon=6, num_candidates=64,
        cuda_graph=graph, **options,
    )  # fmt: skip
    out = [planner.plan(model.predict, reward, obs, done) for _ in range(steps)]
    return torch.stack(out), planner


@needs_cuda
@pytest.mark.parametrize("name", list(PLANNERS))
def test_graphed_plans_equal_eager_plans(name):
    model = _model().cuda()
    eager, _ = _plans(name, model, graph=False)
    graphed, planner = _plans(name, model, graph=True)
    assert planner.graphs.failure is None and planner.graphs.records >= 1 and planner.graphs.replays >= 3
    torch.testing.assert_close(graphed, eager, rtol=1e-5, atol=1e-5)


@needs_cuda
def test_a_graph_sees_in_place_updates_and_is_recorded_again_for_replaced_tensors():
    model, env = _model().cuda(), make_env(CHEETAH)
    reward, done = env.unwrapped.reward_fn, env.unwrapped.termination_fn
    obs = torch.randn(2, 17, generator=torch.Generator().manual_seed(1)).cuda()
    low, high = -torch.ones(6, device="cuda"), torch.ones(6, device="cuda")
    eager, graphed = (
        make_planner("rs", low, high, num_envs=2, seed=3, device="cuda", horizon=6, num_candidates=64, cuda_graph=g)
        for g in (False, True)
    )

    def both() -> None:
        torch.testing.assert_close(graphed.plan(model.predict, reward, obs, done), eager.plan(model.predict, reward, obs, done),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip

    both()
    with torch.no_grad():
        model.net.w0.mul_(3.0)  # same storage: the recorded graph reads the new values
    both()
    assert (graphed.graphs.records, graphed.graphs.replays) == (1, 2)
    model.net.w1 = nn.Parameter(model.net.w1.detach() * -1.0)  # a new tensor: recorded again
    both()
    assert (graphed.graphs.records, graphed.graphs.replays) == (2, 3)


@needs_cuda
def test_graphed_trajectory_sampling_matches_eager_without_noise():
    model = _model(ensemble=5).cuda()
    with torch.no_grad():  # variance bounds far below zero: every member predicts its mean
        model.max_logvar.fill_(-60.0)
        model.min_logvar.fill_(-80.0)
    eager, _ = _plans("cem", model, graph=False, particles=5)
    graphed, planner = _plans("cem", model, graph=True, particles=5)
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
@pytest.mark.parametrize("name", list(PLANNERS))
def test_graphed_adapted_plans_equal_eager_plans(name):
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
        plans.append(torch.stack([planner.plan(_adapted(model, s), reward, obs, done) for s in (1.0, 0.7, 1.3)]))
    assert planner.graphs.failure is None and planner.graphs.records >= 1 and planner.graphs.replays >= 3
    torch.testing.assert_close(plans[1], plans[0], rtol=1e-5, atol=1e-5)
