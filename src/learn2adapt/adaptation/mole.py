"""MOLe: an online mixture of meta-learned task models (Nagabandi, Finn, Levine, ICLR 2019).

"Deep Online Learning via Meta-Learning: Continual Adaptation for Model-Based RL". GrBAL
re-adapts from theta* at every step and keeps nothing; when the dynamics return to a
task seen long ago it must adapt again from scratch. MOLe keeps, per environment, a set
of task models theta_1..theta_n (at most ``adaptation.mixture.max_models``), each with a
soft count, and at every step (docs/method.md Sec. 4):

* splits the recent window into an older part D1 and the newest part D2 (``recent``);
* E step: the likelihood of D2 under each model, a Gaussian on the normalised state
  change whose variance is the meta-trained model's post-adaptation validation error
  (times ``temperature``), times a Chinese-restaurant-process prior over the soft counts
  (concentration ``alpha``, plus ``sticky`` for the previous step's task); a new-task
  candidate, theta* adapted on D1 with GrBAL's step, competes with prior alpha / (n + alpha);
* if the candidate is the MAP task, and no model held errs on D2 within ``surprise`` x the
  candidate's error (the recall test), it becomes a model (at the cap, it replaces the
  model with the smallest count);
* a model younger than M steps is provisional: while it is the MAP model, a winning
  candidate replaces it rather than taking another slot, and once an older model is the
  MAP again it is dropped. A model made from a window that straddles a switch (D2 holding
  both tasks, which no model fits) is thus not kept as a task of its own;
* M step: every model takes a gradient step on D2 weighted by its posterior, except those
  that D2 surprises (error above ``surprise`` x their running error), so a task change does
  not drag the MAP model to the new task before the candidate has its data;
* the planner predicts with the MAP model (the posterior's argmax, prior included), or with
  the candidate while D2 surprises the MAP model and no new task passed the recall test.

Meta-training is exactly GrBAL's (:class:`MOLe` is a :class:`GrBAL` with this online
rule), so a ``grbal`` checkpoint can be evaluated with the mixture (``eval --online mole``).
``max_models = 1`` is continued adaptation: one model, gradient steps carried from step
to step. Everything is batched over environments x models; no Python loop over either.

Departures from the authors' code, and why: the counts are soft counts over the whole
history (theirs reset every 20 steps, a recency prior); the planner uses the MAP model
(theirs the lowest-loss one, ignoring the prior); the likelihood's variance comes from
validation instead of a hand-tuned temperature; the first model, theta*, starts with a
pseudo-count of 1 (with a count of 0 the prior would always prefer a new task at the
first step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from learn2adapt.adaptation.grbal import GrBAL
from learn2adapt.adaptation.mixture import MixtureState
from learn2adapt.errors import ConfigError
from learn2adapt.moved import moved_names
from learn2adapt.types import Window

#: Names that moved to :mod:`learn2adapt.adaptation.mixture` (issue 41): importable from here, with
#: a DeprecationWarning, until 0.3.
if not TYPE_CHECKING:  # mypy sees no __getattr__, so it still flags a name imported from the wrong module
    __getattr__ = moved_names(
        __name__, dict.fromkeys(("M_STEP_MIN_WEIGHT", "LEVEL_RATE"), "learn2adapt.adaptation.mixture")
    )


class MOLe(GrBAL):
    """GrBAL's meta-trained prior with an online mixture of task models (see the module docstring)."""

    algo = "mole"

    def _build(self) -> None:
        super()._build()
        if self.members:
            raise ConfigError("MOLe on a probabilistic ensemble is not implemented (model.ensemble must be 1)")
        m = self.adapt_cfg.mixture
        if (
            m.max_models < 1
            or not m.alpha > 0
            or m.sticky < 0
            or not m.temperature > 0
            or m.variance < 0
            or m.lr < 0
            or not m.surprise >= 0
        ):
            raise ConfigError(
                "adaptation.mixture needs max_models >= 1, alpha > 0, sticky >= 0, temperature > 0, variance >= 0, "
                "lr >= 0, surprise >= 0"
            )
        if not 0 <= m.recent < self.adapt_cfg.past:
            raise ConfigError("adaptation.mixture.recent must be in [0, adaptation.past) (0: M / 4)")

    def online_state(self, num_envs: int) -> MixtureState:
        return MixtureState(self, num_envs)


class OracleIdentityMixture(MOLe):
    """MOLe's mixture told the true task: an upper bound on what recall is worth (evaluation only).

    One model per true task: a task seen for the first time gets a model started from theta*,
    every model is adapted continually by MOLe's M step while its task is in force, and when a
    task comes back its own model is recalled exactly. Nothing is inferred: the task of the
    newest transition is read from the environment (:attr:`OracleMixtureState.task_source`), so
    this measures recall with a perfect task identifier, not a method. Evaluate a ``grbal`` or
    ``mole`` run with it: ``learn2adapt eval RUN --online mole-oracle``.
    """

    algo = "mole-oracle"

    def online_state(self, num_envs: int) -> OracleMixtureState:
        return OracleMixtureState(self, num_envs)


class OracleMixtureState(MixtureState):
    """:class:`MixtureState` whose E step is the true task (see :class:`OracleIdentityMixture`).

    :attr:`task_source` returns, for every environment, a key of the task of the newest
    transition; the evaluation sets it to read ``env.unwrapped.task``.
    """

    def __init__(self, rule: MOLe, num_envs: int) -> None:
        self.task_source: Callable[[], Sequence[str]] | None = None
        self._slot_of: list[dict[str, int]] = [{} for _ in range(num_envs)]
        super().__init__(rule, num_envs)

    def reset(self, env_index: int | None = None, episode_start: bool = False) -> None:
        if episode_start and self.cfg.keep_across_episodes and self.params:
            return
        super().reset(env_index, episode_start)
        for e in range(self.num_envs) if env_index is None else (env_index,):
            self._slot_of[e] = {}

    def _slot_for(self, e: int, key: str) -> int:
        """The slot of task ``key`` in environment ``e``; a new task takes a free slot, holding theta*."""
        slots = self._slot_of[e]
        if key in slots:
            return slots[key]
        if not slots:  # the first task of the episode: theta*, which reset put in slot 0
            slots[key] = 0
            return 0
        free = (~self.active[e]).nonzero()
        if free.numel() == 0:
            raise ConfigError(
                f"mole-oracle: more distinct tasks in one episode than adaptation.mixture.max_models={self.n}; "
                "raise it with --set adaptation.mixture.max_models=N"
            )
        slot = int(free[0])
        theta = self.rule.model.params()
        for k, v in self.params.items():
            v[e, slot] = theta[k].detach()
        self.active[e, slot] = True
        self.ids[e, slot] = self._next_id[e]
        self._next_id[e] += 1
        slots[key] = slot
        return slot

    def update(self, recent: Window) -> None:
        """The true task's model takes MOLe's M step on D2; the planner will use it."""
        if self.task_source is None:
            raise ConfigError(
                "mole-oracle reads the true task from the environment: it is evaluation only "
                "(learn2adapt eval RUN --online mole-oracle)"
            )
        keys = list(self.task_source())
        ev = self._evidence(recent)
        slots = [self._slot_for(e, key) for e, key in enumerate(keys)]
        self.current = torch.tensor(slots, dtype=torch.long, device=self.current.device)
        if ev is None:
            return
        n = self._in_use()
        post = torch.nn.functional.one_hot(self.current, n).to(ev.x.dtype) * ev.ok[:, None]
        self.counts[:, :n] += post
        self.age[:, :n] += ev.ok[:, None].to(self.age.dtype)
        self._m_step(self._slots(n)[0], ev.x, ev.y, ev.in_d2, post)
