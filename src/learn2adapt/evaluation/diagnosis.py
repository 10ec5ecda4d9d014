"""Is the planner fooled by the model? Candidate returns under the learned model against the simulator's.

The oracle (:mod:`learn2adapt.evaluation.oracle`) says how much return a learned controller
loses to model error; this says *how* it loses it. At states the run's own controller visits
on a held-out task, every ``every`` control steps, the same uniformly random candidate
sequences (random shooting's) are scored twice over the planner's horizon: by the run's
model as its planner scores them (adapted on the recent transitions, with the run's
particles and precision), and by the simulator from the exact MuJoCo state (the oracle's
model). Per state and environment:

- ``spearman``: rank correlation of the two scorings over the candidates (1: the model
  orders them as the simulator does);
- ``optimism``: the model's return of its best candidate minus that candidate's true return.
  Large and positive: the planner picks the sequences whose returns the model overestimates
  most, i.e. it exploits model error (the failure PETS's ensembles are meant to prevent);
- ``regret``: the best true return among the candidates minus the true return of the
  model's best: what the choice costs within the same candidates;
- ``bias``: the mean over candidates of model minus true return (an overall over- or
  under-estimate, which by itself does not change the choice);
- ``headroom``: the best true return among the candidates minus their mean true return: what
  a perfect ranking would gain over a random pick, the scale ``regret`` is read against.

The controller acts as in ``learn2adapt eval`` (its own plan, the same episodes and seeds);
the scoring only observes. MuJoCo families only (the simulator must be restorable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from learn2adapt.evaluation.oracle import SimulatorModel
from learn2adapt.evaluation.protocol import evaluate, torch_rng_preserved
from learn2adapt.evaluation.results import EvalResult
from learn2adapt.evaluation.statistics import mean_ci95, spearman
from learn2adapt.planning.random_shooting import RandomShooting
from learn2adapt.run.agent import MPCAgent
from learn2adapt.run.config import RunConfig
from learn2adapt.run.state import RunState

#: The per-state measures, in report order.
MEASURES = ("spearman", "optimism", "regret", "bias", "headroom")


@dataclass
class StateScore:
    """The measures of the module docstring at one visited state of one environment."""

    step: int
    spearman: float
    optimism: float
    regret: float
    bias: float
    headroom: float


def score_candidates(model_returns: np.ndarray, true_returns: np.ndarray, step: int) -> StateScore | None:
    """The measures for one state from both scorings of the same candidates ``(N,)``.

    Candidates the model rolls out to a non-finite return (ranked last by the planners) are
    left out; None when fewer than two remain.
    """
    ok = np.isfinite(model_returns) & np.isfinite(true_returns)
    if ok.sum() < 2:
        return None
    m, t = model_returns[ok], true_returns[ok]
    best = int(np.argmax(m))
    return StateScore(
        step=step,
        spearman=spearman(m, t),
        optimism=float(m[best] - t[best]),
        regret=float(t.max() - t[best]),
        bias=float((m - t).mean()),
        headroom=float(t.max() - t.mean()),
    )


class DiagnosingAgent:
    """A run's MPC agent that, every ``every`` steps, scores random candidates with its model and the simulator.

    Implements the rollout ``Policy`` protocol by delegating to ``agent``; the scoring draws
    its candidates from a generator of its own, so the agent's actions are those it takes
    without the diagnosis.
    """

    def __init__(self, agent: MPCAgent, envs: Sequence[gym.Env], every: int, candidates: int, seed: int) -> None:
        self.agent, self.online = agent, agent.online
        self.every = every
        self.simulator = SimulatorModel(envs)
        planner = agent.planner
        # The simulator's scoring: fp32, one particle (it is deterministic), the planner's horizon.
        self.truth = RandomShooting(
            planner.action_low,
            planner.action_high,
            planner.horizon,
            candidates,
            device="cpu",
            seed=seed,
            num_envs=len(envs),
        )
        self.steps = 0
        self.scores: list[StateScore] = []

    def reset(self, env_index: int) -> None:
        self.agent.reset(env_index)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.steps % self.every == 0:
            self._score(obs)
        self.steps += 1
        return self.agent.act(obs)

    def observe(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        self.agent.observe(obs, act, next_obs)

    def _score(self, obs: np.ndarray) -> None:
        agent = self.agent
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        candidates = self.truth.sample(obs_t.shape[0]).clone()
        # An ensemble samples its next states from torch's global generator: restored afterwards,
        # so the controller's own plans draw what they would have drawn without the diagnosis.
        with torch_rng_preserved():
            predict = agent.predictor()
            with torch.no_grad():
                model = agent.planner.evaluate(
                    predict, agent.reward_fn, obs_t.to(agent.device), candidates.to(agent.device), agent.termination_fn
                )
                model_returns = model.float().cpu().numpy().copy()
        with torch.no_grad():
            self.simulator.begin()
            truth = self.truth.evaluate(
                self.simulator.predict, agent.reward_fn, obs_t, candidates, agent.termination_fn
            )
            true_returns = truth.numpy().copy()
        for e in range(obs_t.shape[0]):
            score = score_candidates(model_returns[e], true_returns[e], self.steps)
            if score is not None:
                self.scores.append(score)


@dataclass
class DiagnosedRun:
    """What :func:`~learn2adapt.evaluation.protocol.evaluate` needs, with a diagnosing controller."""

    run: RunState
    every: int
    candidates: int
    agents: list[DiagnosingAgent] = field(default_factory=list)

    @property
    def cfg(self) -> RunConfig:
        return self.run.cfg

    @property
    def train_env_steps(self) -> int:
        return self.run.train_env_steps

    @property
    def iteration(self) -> int:
        return self.run.iteration

    def controller(self, envs: Sequence[gym.Env], seed: int) -> DiagnosingAgent:
        agent = DiagnosingAgent(self.run.controller(envs, seed), envs, self.every, self.candidates, seed)
        self.agents.append(agent)
        return agent


@dataclass
class Diagnosis:
    """The scores of every diagnosed state, with the evaluation they were taken in."""

    env: str
    algo: str
    schedule: str
    every: int
    candidates: int
    horizon: int
    particles: int
    scores: list[StateScore]
    evaluation: EvalResult

    def summary(self) -> dict[str, Any]:
        """Each measure's mean and 95% CI half-width over the diagnosed states."""
        out: dict[str, Any] = {"states": len(self.scores)}
        for name in MEASURES:
            mean, ci = mean_ci95([getattr(s, name) for s in self.scores])
            out[name] = {"mean": round(mean, 4), "ci95": round(ci, 4)}
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "algo": self.algo,
            "schedule": self.schedule,
            "every": self.every,
            "candidates": self.candidates,
            "horizon": self.horizon,
            "particles": self.particles,
            "summary": self.summary(),
            "heldout_return": self.evaluation.to_json()["mean"],
            "scores": [asdict(s) for s in self.scores],
        }


def diagnose(
    run: RunState,
    every: int = 10,
    candidates: int = 500,
    episodes_per_task: int = 1,
    schedule: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Diagnosis:
    """Evaluate ``run`` on its held-out tasks, scoring candidates every ``every`` steps (module docstring).

    Args:
        run: a loaded model-based run of a MuJoCo family.
        every: control steps between two diagnosed states.
        candidates: random candidate sequences scored per state.
        episodes_per_task: evaluation episodes per held-out task.
        schedule: task schedule; defaults to the run's ``eval.schedule``.
        seed: evaluation seed (the same initial states as ``learn2adapt eval --seed``).
        progress: show progress bars.
    """
    diagnosed = DiagnosedRun(run, every, candidates)
    result = evaluate(
        diagnosed,
        episodes_per_task=episodes_per_task,
        schedule=schedule,
        seed=seed,
        progress=progress,
        measure_model=False,
    )
    cfg = run.cfg
    return Diagnosis(
        env=cfg.env,
        algo=cfg.algo,
        schedule=result.schedule,
        every=every,
        candidates=candidates,
        horizon=cfg.planner.horizon,
        particles=cfg.planner.particles,
        scores=[s for agent in diagnosed.agents for s in agent.scores],
        evaluation=result,
    )
