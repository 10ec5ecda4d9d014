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
from learn2adapt.planning.cuda_graph import RolloutGraphs, _Recorded, storage_key
from learn2adapt.training.config import RunConfig

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
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
    monkeypatch.setattr("learn2adapt.training.config.check_device", lambda device: None)  # no GPU needed here
    cfg.device = "cuda"
    with pytest.raises(ConfigError, match="cuda_graph"):
        cfg.validate()
    cfg.planner.precision = "auto"  # fp32 on a GPU
    cfg.validate()


class _ReplayByCalling:
    """Stands in for a recorded graph on a CPU: a replay runs the rollout on the static tensors."""

    def __init__(self, rollout, obs, actions):
        self.rollout, self.obs, self.actions = rollout, obs, actions
        self.returns = rollout(obs, actions).clone()

    def replay(self):
        self.returns.copy_(self.rollout(self.obs, self.actions))


def test_replays_read_the_inputs_of_each_call_and_records_follow_the_storage(monkeypatch):
    def record(self, rollout, obs, actions):
        self.records += 1
        fake = _ReplayByCalling(rollout, obs.clone(), actions.clone())
        return _Recorded(fake, fake.obs, fake.actions, fake.returns)

    monkeypatch.setattr(RolloutGraphs, "_record", record)
    model, env = _model(), make_env(CHEETAH)
    reward = env.unwrapped.reward_fn
    planner = make_planner("rs", -torch.ones(6), torch.ones(6), num_envs=2, seed=0, horizon=5, num_candidates=16)
    graphs = RolloutGraphs()
    g = torch.Generator().manual_seed(2)
    for _ in range(3):  # new inputs each call: the replay must see them, not the recorded ones
        obs, actions = torch.randn(2, 17, generator=g), torch.rand(2, 16, 5, 6, generator=g) * 2 - 1
        eager = planner.evaluate(model.predict, reward, obs, actions).clone()
        rollout = lambda o, a: planner.evaluate(model.predict, reward, o, a)
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
