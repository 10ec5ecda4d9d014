"""Planning under a deadline (Planner.deadline) and the real-time Controller (learn2adapt.control).

Time is a fake clock that the model advances, so the logic is tested exactly, not timed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from learn2adapt.control import Controller
from learn2adapt.errors import ConfigError
from learn2adapt.planning import make_planner
from tests.conftest import PENDULUM, TINY_RUN, as_sets

pytestmark = pytest.mark.usefixtures("one_thread")

H = 4


class FakeClock:
    """Time advances only when the model predicts: ``per_row`` per predicted row, ``per_call`` per call."""

    def __init__(self, per_call: float = 0.0, per_row: float = 0.0) -> None:
        self.t, self.per_call, self.per_row = 0.0, per_call, per_row

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        self.t += self.per_call + self.per_row * obs.shape[:-1].numel()
        return obs + 0.1 * act.sum(-1, keepdim=True)


def reward(obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    return -(nxt - 1.0).square().sum(-1)


def _planner(name: str, clock: FakeClock, **kw):
    planner = make_planner(name, np.array([-1.0]), np.array([1.0]), num_envs=1, seed=3, horizon=H, **kw)
    planner._now = lambda: clock.t  # type: ignore[method-assign]
    return planner


@pytest.mark.parametrize("name", ["cem", "mppi", "icem"])
def test_an_iterative_planner_stops_before_the_iteration_that_would_miss(name: str) -> None:
    clock = FakeClock(per_call=1.0)  # one iteration = H model calls = H time units
    planner = _planner(name, clock, num_candidates=64, iterations=5)
    obs = torch.zeros(1, 1)
    planner.plan(clock.predict, reward, obs)  # no deadline: every iteration
    assert planner.last_work == 5
    planner.reset()
    clock.t = 0.0
    planner.deadline = 2.5 * H  # iteration 1 ends at 2H (fits), iteration 2 would end at 3H
    with_deadline = planner.plan(clock.predict, reward, obs)
    assert planner.last_work == 2 and clock.t == 2 * H
    # ... and it returns what the same planner returns after two iterations
    clock2 = FakeClock(per_call=1.0)
    two = _planner(name, clock2, num_candidates=64, iterations=5)
    two.plan(clock2.predict, reward, obs)  # the same random stream up to here
    two.reset()
    two.deadline = 2.5 * H
    clock2.t = 0.0
    assert torch.equal(two.plan(clock2.predict, reward, obs), with_deadline)
    planner.deadline = -1.0  # already passed: the first iteration still runs
    planner.plan(clock.predict, reward, obs)
    assert planner.last_work == 1


def test_random_shooting_sizes_n_to_fit() -> None:
    clock = FakeClock(per_row=0.01)  # a candidate costs H x 0.01
    planner = _planner("rs", clock, num_candidates=1000)
    obs = torch.zeros(1, 1)
    planner.deadline = 1e9
    planner.plan(clock.predict, reward, obs)  # measures the time per candidate
    assert planner.last_work == 1000
    clock.t = 0.0
    planner.deadline = 2.0  # 2.0 / (H x 0.01) = 50 candidates, 10% spared: 45
    planner.plan(clock.predict, reward, obs)
    assert planner.last_work == 45 and clock.t <= 2.0
    planner.deadline = None
    planner.plan(clock.predict, reward, obs)
    assert planner.last_work == 1000


def test_the_best_candidate_is_kept_when_n_shrinks() -> None:
    clock = FakeClock(per_row=0.01)
    planner = _planner("rs", clock, num_candidates=200)
    obs = torch.zeros(1, 1)
    planner.deadline = 1e9
    planner.plan(clock.predict, reward, obs)
    clock.t, planner.deadline = 0.0, 0.4  # 9 candidates
    action = planner.plan(clock.predict, reward, obs)
    candidates = planner._buffers["actions"][:, : planner.last_work]
    returns = planner.evaluate(FakeClock().predict, reward, obs, candidates)
    assert torch.equal(action[0], candidates[0, returns[0].argmax(), 0])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from learn2adapt.cli import main

    run = tmp_path_factory.mktemp("ctrl") / "run"
    args = ["train", "--algo", "grbal", "--env", PENDULUM, "--run-dir", str(run), "--quiet"]
    assert main([*args, *as_sets([*TINY_RUN, "iterations=1"])]) == 0
    return run


def test_the_controller_adapts_on_the_transitions_it_lived(run_dir: Path) -> None:
    from learn2adapt.envs import make_env

    ctrl = Controller(run_dir, seed=0)
    manual = Controller(run_dir, seed=0, auto_observe=False)
    env = make_env(PENDULUM)
    obs, _ = env.reset(seed=1)
    for _ in range(6):
        action = ctrl.act(obs)
        assert manual.act(obs).tolist() == action.tolist()  # same history, same seed: same plan
        assert env.action_space.contains(action.astype(np.float32))
        nxt, *_ = env.step(action)
        manual.observe(obs, action, nxt)
        obs = nxt
    assert int(ctrl.agent.history.count[0]) == 5  # 6 calls: 5 transitions; the 6th pairs at the next call
    ctrl.act(obs)
    hist, hist_manual = ctrl.agent.history.data, manual.agent.history.data
    assert all(torch.equal(getattr(hist, k), getattr(hist_manual, k)) for k in ("obs", "act", "next_obs"))
    ctrl.reset()
    assert int(ctrl.agent.history.count[0]) == 0


def test_a_deadline_below_the_smallest_plan_is_refused(run_dir: Path) -> None:
    with pytest.raises(ConfigError, match="shorter than one model evaluation here"):
        Controller(run_dir, deadline_ms=1e-6)
    with pytest.raises(ConfigError, match="positive number of milliseconds"):
        Controller(run_dir, deadline_ms=float("nan"))
