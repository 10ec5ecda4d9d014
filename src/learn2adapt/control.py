"""A trained run as the controller of a real control loop: ``act(obs) -> action`` at every tick.

The paper's robot ran MPC with online adaptation at every step: the last ``M`` transitions
adapt the meta-trained model, and the planner picks the next action with it (Nagabandi et
al., 2019, Alg. 2). :class:`Controller` is that loop's body for one robot, built from a run
directory, with no environment to step:

.. code-block:: python

    ctrl = Controller("runs/hopper-grbal", deadline_ms=50)
    ctrl.reset()
    obs = robot.read_state()
    while running:
        robot.send(ctrl.act(obs))   # adapts on its own recent transitions, then plans
        obs = robot.read_state()

By default each call pairs the previous call's observation and action with the new
observation as one transition. A robot whose state estimate arrives late builds it with
``auto_observe=False`` and hands in each transition when it is known (:meth:`Controller.observe`).

With ``deadline_ms``, each :meth:`Controller.act` aims to return within that many
milliseconds of being called, adaptation included: CEM, MPPI and iCEM stop before an
iteration that would miss it, and random shooting evaluates only the candidates that fit;
the action returned is the planner's answer after the work done. A deadline shorter than the
controller's smallest plan on this machine is refused when it is built.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from learn2adapt.errors import ConfigError
from learn2adapt.run.build import mpc_agent, run_env
from learn2adapt.run.state import RunState, load_run

#: Plans timed to find the smallest plan a deadline must allow.
CALIBRATION_PLANS = 5
#: Plans under the deadline before the first real one, so the planner's time estimates settle
#: (random shooting's candidate count converges geometrically to what fits).
WARMUP_PLANS = 10


class Controller:
    """MPC with online adaptation for one robot, from a trained model-based run.

    Args:
        run_dir: a run directory written by ``learn2adapt train`` (model-based).
        deadline_ms: the time :meth:`act` may take, in milliseconds; ``None``: no deadline
            (every planner iteration and candidate, as in training and evaluation).
        seed: seeds the planner's sampling.
        auto_observe: pair consecutive :meth:`act` calls into transitions (otherwise only
            :meth:`observe` adds them).
        run: an already loaded run instead of ``run_dir`` (then ``run_dir`` may be ``None``).

    Raises:
        ConfigError: the run is model-free, or the deadline is shorter than the smallest
            plan on this machine (the message gives that time).
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        deadline_ms: float | None = None,
        seed: int = 0,
        auto_observe: bool = True,
        run: RunState | None = None,
    ) -> None:
        if run is None:
            if run_dir is None:
                raise ValueError("Controller needs a run directory or a loaded run")
            run = load_run(Path(run_dir))
        if not isinstance(run, RunState):
            raise ConfigError(f"{run_dir}: a {run.cfg.algo} run has no model to plan with")
        if deadline_ms is not None and not (np.isfinite(deadline_ms) and deadline_ms > 0):
            raise ConfigError(f"deadline_ms must be a positive number of milliseconds (got {deadline_ms})")
        self.run, self.cfg = run, run.cfg
        env = run_env(self.cfg)  # its action bounds and reward only
        try:
            self.action_space: Any = env.action_space
            self.agent = mpc_agent(self.cfg, run.rule, env, 1, seed, run.reward_model)
            probe = np.asarray(env.reset(seed=seed)[0], np.float32)
        finally:
            env.close()
        self.planner = self.agent.planner
        self.auto_observe = auto_observe
        self.deadline_s = None if deadline_ms is None else deadline_ms / 1000.0
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        #: Milliseconds of the smallest plan (one iteration; random shooting: one candidate), measured.
        self.floor_ms = float("nan")
        if self.deadline_s is not None:
            self.floor_ms = self._smallest_plan_ms(probe)
            if deadline_ms is not None and deadline_ms < self.floor_ms:
                raise ConfigError(
                    f"deadline_ms={deadline_ms:g} is shorter than one model evaluation here: the smallest plan "
                    f"(adaptation + one iteration) takes {self.floor_ms:.2f} ms on this machine"
                )
        self.reset()

    def _smallest_plan_ms(self, obs: np.ndarray) -> float:
        """The median time of a plan whose deadline has already passed (so it does its minimum), after
        which :data:`WARMUP_PLANS` plans under the real deadline settle the planner's estimates."""
        times = []
        for _ in range(CALIBRATION_PLANS):
            start = time.perf_counter()
            self.planner.deadline = start
            self.agent.act(obs[None])
            times.append(time.perf_counter() - start)
        assert self.deadline_s is not None
        for _ in range(WARMUP_PLANS):
            self.planner.deadline = time.perf_counter() + self.deadline_s
            self.agent.act(obs[None])
        self.planner.deadline = None
        return 1000.0 * float(np.median(times))

    def reset(self) -> None:
        """Start an episode: forget the recent transitions and the planner's warm start."""
        self.agent.reset(0)
        self._last = None

    def observe(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        """Add one transition the robot went through (what adaptation learns from)."""
        row = lambda x: np.asarray(x, np.float32).reshape(1, -1)  # noqa: E731
        self.agent.observe(row(obs), row(act), row(next_obs))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action for observation ``obs`` (adapting first on the recent transitions)."""
        start = time.perf_counter()
        obs = np.asarray(obs, np.float32).reshape(-1)
        if self.auto_observe and self._last is not None:
            self.observe(self._last[0], self._last[1], obs)
        self.planner.deadline = None if self.deadline_s is None else start + self.deadline_s
        try:
            action = self.agent.act(obs[None])[0]
        finally:
            self.planner.deadline = None
        self._last = (obs, action)
        return action

    @property
    def last_work(self) -> int:
        """Iterations (random shooting: candidates) the last plan evaluated."""
        return int(self.planner.last_work)
