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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from learn2adapt.adaptation.grbal import GrBAL
from learn2adapt.adaptation.inner_update import Params, normalised
from learn2adapt.adaptation.online import online_params
from learn2adapt.errors import ConfigError
from learn2adapt.models import onednn
from learn2adapt.types import AdaptedPredictor, PredictFn, Window


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


#: Posterior weight below which a model takes no M step (:meth:`MixtureState._m_step`).
M_STEP_MIN_WEIGHT = 1e-6
#: Weight of the newest D2 error in a model's running error (:attr:`MixtureState.level`): about 10 steps.
LEVEL_RATE = 0.1


@dataclass(frozen=True)
class _Evidence:
    """One step's window of every environment, as the E and M steps read it."""

    window: Window  # padding and non-finite rows zeroed
    x: torch.Tensor  # normalised model inputs (E, M, in)
    y: torch.Tensor  # normalised state changes (E, M, obs_dim)
    in_d1: torch.Tensor  # (E, M) rows of the older part D1
    in_d2: torch.Tensor  # (E, M) rows of the newest part D2
    k2: torch.Tensor  # (E,) valid rows in D2
    ok: torch.Tensor  # (E,) environments that update this step


class MixtureState:
    """The task models of ``num_envs`` environments, updated once per control step.

    ``params[name]`` is ``(E, n, *shape)``; ``counts`` ``(E, n)`` soft counts; ``active``
    ``(E, n)`` which slots hold a model; ``age`` ``(E, n)`` control steps since each model was
    made; ``current`` ``(E,)`` the MAP model of the last step. :attr:`assignment` and
    :attr:`num_models` are read by the evaluation's recall measures.
    """

    def __init__(self, rule: MOLe, num_envs: int) -> None:
        self.rule = rule
        self.cfg = rule.adapt_cfg.mixture
        self.num_envs = num_envs
        self.n = self.cfg.max_models
        self.d2 = self.cfg.recent or max(1, rule.adapt_cfg.past // 4)
        device = rule.device
        self.params: Params = {}
        self.counts = torch.zeros(num_envs, self.n, device=device)
        self.active = torch.zeros(num_envs, self.n, dtype=torch.bool, device=device)
        self.age = torch.zeros(num_envs, self.n, device=device)
        self.current = torch.zeros(num_envs, dtype=torch.long, device=device)
        #: ``(E, n)`` each model's running error on D2 while it is the MAP model (the surprise test's scale).
        self.level = torch.zeros(num_envs, self.n, device=device)
        #: ``(E, n)`` an identity per model, new for every model made (a slot is reused after a drop).
        self.ids = torch.zeros(num_envs, self.n, dtype=torch.long, device=device)
        self._next_id = torch.ones(num_envs, dtype=torch.long, device=device)
        #: ``(stuck (E,), candidate params)`` of the last update: who plans with the candidate.
        self._fallback: tuple[torch.Tensor, Params] | None = None
        self.reset()

    # --- episode boundaries -------------------------------------------------------------------
    def reset(self, env_index: int | None = None, episode_start: bool = False) -> None:
        """Back to one model, theta*, for one environment (all if None).

        At an episode start (``episode_start``) the models are kept when
        ``keep_across_episodes`` is set.
        """
        if episode_start and self.cfg.keep_across_episodes and self.params:
            return
        theta = {k: v.detach() for k, v in self.rule.model.params().items()}
        sel = slice(None) if env_index is None else env_index
        if not self.params:
            self.params = {k: v.expand(self.num_envs, self.n, *v.shape).clone() for k, v in theta.items()}
        for k, v in theta.items():
            self.params[k][sel] = v
        self.counts[sel] = 0.0
        self.active[sel] = False
        self.counts[sel, 0] = 1.0  # theta*, with a pseudo-count (module docstring)
        self.active[sel, 0] = True
        self.age[sel] = float(self.rule.adapt_cfg.past)  # theta* is no straddling model to supersede
        self.current[sel] = 0
        self.ids[sel] = 0
        self._next_id[sel] = 1
        self.level[sel] = self._start_level()

    @property
    def num_models(self) -> torch.Tensor:
        """Models held per environment ``(E,)``."""
        return self.active.sum(1)

    @property
    def assignment(self) -> torch.Tensor:
        """The identity of each environment's MAP model at the last step ``(E,)`` (:attr:`ids`)."""
        return self.ids.gather(1, self.current[:, None])[:, 0]

    # --- one control step ---------------------------------------------------------------------
    def _start_level(self) -> float:
        """A new model's running error before it has any: the meta-trained model's post-adaptation error."""
        return float(self.rule.calibration.post_adapt_mse) if self.cfg.surprise > 0 else 0.0

    def _variance(self) -> float:
        if self.cfg.variance > 0:
            return self.cfg.variance * self.cfg.temperature
        v = float(self.rule.calibration.post_adapt_mse)
        if not math.isfinite(v) or v <= 0:
            raise ConfigError(
                "MOLe needs the post-adaptation validation error of the meta-trained model, which this checkpoint "
                "lacks (written before it was stored): set adaptation.mixture.variance, or retrain"
            )
        return v * self.cfg.temperature

    def _losses(
        self, params: Params, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, per_row: bool = True
    ) -> torch.Tensor:
        """Squared error ``(E, n)`` of each model on each environment's D2 (valid rows only).

        ``per_row``: the mean over the valid rows (the E step's likelihood); else summed over
        M, GrBAL's inner loss (the M step then takes GrBAL's step for the same evidence).
        """
        E, n = next(iter(params.values())).shape[:2]
        flat = {k: v.reshape(E * n, *v.shape[2:]) for k, v in params.items()}
        xs = x.unsqueeze(1).expand(E, n, *x.shape[1:]).reshape(E * n, *x.shape[1:])
        pred = self.rule.model.net(xs, flat).reshape(E, n, *y.shape[1:])
        err = (pred - y.unsqueeze(1)).pow(2).mean(-1)  # (E, n, T)
        total = torch.where(mask.unsqueeze(1), err, 0.0).sum(-1)
        if not per_row:
            return total / self.rule.adapt_cfg.past
        return total / mask.unsqueeze(1).to(err.dtype).sum(-1).clamp(min=1.0)

    def _evidence(self, recent: Window) -> _Evidence | None:
        """The normalised window of each environment, split into D1 and D2 (None: no environment updates)."""
        E, T = self.num_envs, recent.length
        count = recent.count if recent.count is not None else torch.full((E,), T, device=recent.obs.device)
        k2 = torch.clamp(count, max=self.d2)  # valid rows in D2
        rows = torch.arange(T, device=count.device)
        in_d2 = rows[None, :] >= (T - k2)[:, None]
        in_d1 = (rows[None, :] >= (T - count)[:, None]) & ~in_d2
        finite = torch.stack([t.isfinite().all(-1) for t in (recent.obs, recent.act, recent.next_obs)]).all(0)
        ok = (k2 > 0) & ((finite | ~(in_d1 | in_d2)).all(1))  # environments that update this step
        if not bool(ok.any()):
            return None
        keep = ((in_d1 | in_d2) & finite)[..., None]  # padding and non-finite rows become zeros
        obs, act, nxt = (torch.where(keep, t, 0.0) for t in (recent.obs, recent.act, recent.next_obs))
        with torch.no_grad():
            x, y = normalised(self.rule.model, obs, act, nxt)
        return _Evidence(Window(obs, act, nxt), x, y, in_d1, in_d2, k2, ok)

    def update(self, recent: Window) -> None:
        """E step, new task, M step on the newest transitions of each environment (batched)."""
        rule, cfg = self.rule, self.cfg
        # Only the slots in use are scored and stepped (views, written in place): a new model
        # takes the lowest free slot, so the models sit at the front, and a mixture of 1-2 models
        # costs what they cost, not max_models' worth. The view grows when a new model needs it.
        n = self._in_use()
        params, active, counts, age = self._slots(n)
        ev = self._evidence(recent)
        if ev is None:
            return
        E, x, y, in_d1, in_d2, k2, ok = self.num_envs, ev.x, ev.y, ev.in_d1, ev.in_d2, ev.k2, ev.ok
        obs, act, nxt = ev.window.obs, ev.window.act, ev.window.next_obs
        with torch.no_grad():
            losses = self._losses(params, x, y, in_d2)  # (E, n)
        # The new-task candidate: theta* adapted on D1 with GrBAL's step, scored on D2.
        allow_new = self.n > 1
        if allow_new:
            d1 = _right_aligned(Window(obs, act, nxt), in_d1)
            cand = online_params(rule.model, d1, rule.step_size, rule.adapt_cfg.inner_steps)
            theta = rule.model.params()
            cand_params = {
                k: (cand[k] if cand is not None else theta[k].detach().expand(E, *theta[k].shape)) for k in theta
            }
            with torch.no_grad():
                cand_pred = rule.model.net(x, cand_params)
                err = (cand_pred - y).pow(2).mean(-1)
                cand_loss = torch.where(in_d2, err, 0.0).sum(-1) / in_d2.sum(-1).clamp(min=1)
        # E step: log prior (CRP over soft counts, sticky bonus) + Gaussian log-likelihood of D2.
        entries = (k2 * x.new_tensor(rule.obs_dim)).clamp(min=1).to(losses.dtype)  # D2 values scored per env
        var = self._variance()
        pseudo = counts + cfg.sticky * torch.nn.functional.one_hot(self.current, n).to(counts.dtype)
        total = (counts * active).sum(1, keepdim=True)
        log_prior = torch.where(active, pseudo.clamp(min=1e-12).log(), -torch.inf) - (total + cfg.alpha).log()
        log_lik = -0.5 * entries[:, None] * losses / var
        logits = log_prior + log_lik
        if allow_new:
            new_logit = math.log(cfg.alpha) - (total[:, 0] + cfg.alpha).log() - 0.5 * entries * cand_loss / var
            logits = torch.cat([logits, new_logit[:, None]], 1)
        post = torch.softmax(logits, 1)  # (E, n [+1])
        if allow_new:
            wins = ok & (post.argmax(1) == n)
            if cfg.surprise > 0:  # the recall test: a new task only if no model held is within surprise x the candidate
                wins &= torch.where(active, losses > cfg.surprise * cand_loss[:, None], True).all(1)
            young = age[torch.arange(E, device=self.current.device), self.current] < rule.adapt_cfg.past
            slot = torch.where(
                young,
                self.current,
                torch.where(
                    self.active.all(1),
                    torch.where(self.active, self.counts, torch.inf).argmin(1),
                    (~self.active).to(torch.int8).argmax(1),  # at most n: every slot from n on is free
                ),
            )
            any_win = bool(wins.any())  # one host sync; every winner takes exactly one slot
            if any_win and bool((wins & (slot == n)).any()):  # a new model in the first slot past the view
                params, active, counts, age = self._slots(n + 1)
                post = torch.cat([post[:, :n], post.new_zeros(E, 1), post[:, n:]], 1)
                n += 1
            # (E, n); a losing environment's slot may lie past the view: it takes nothing
            take = torch.nn.functional.one_hot(torch.where(wins, slot, 0), n).bool() & wins[:, None]
            if any_win:
                for k, v in params.items():
                    shape = (E, n) + (1,) * (v.dim() - 2)
                    v.copy_(torch.where(take.view(shape), cand_params[k].detach().unsqueeze(1), v))
            active |= take
            self.ids[:, :n] = torch.where(take, self._next_id[:, None], self.ids[:, :n])
            self._next_id += wins.to(self._next_id.dtype)
            # A superseded young model's evidence was the new task's: its count stays.
            counts = torch.where(take & ~young[:, None], 0.0, counts)
            age = torch.where(take, 0.0, age)
            post = torch.where(take, post[:, n : n + 1], post[:, :n])  # the winner's mass moves to its slot
            post = post * active
            post = post / post.sum(1, keepdim=True).clamp(min=1e-12)
        # Provisional models (younger than M steps) that lost the MAP to another model are dropped.
        envs = torch.arange(E, device=self.current.device)
        was = self.current
        drop = ok & (post.argmax(1) != was) & (age[envs, was] < rule.adapt_cfg.past)
        gone = torch.nn.functional.one_hot(was, n).bool() & drop[:, None]
        active &= ~gone
        counts = torch.where(gone, 0.0, counts)
        post = post * ~gone
        post = post / post.sum(1, keepdim=True).clamp(min=1e-12)
        post = torch.where(ok[:, None], post, 0.0)
        self.counts[:, :n] = counts + post
        self.age[:, :n] = age + ok[:, None].to(age.dtype)
        self.current = torch.where(ok, post.argmax(1), self.current)
        self._fallback = None
        weights = post
        if cfg.surprise > 0:
            weights, surprised = self._surprise_gate(losses, post, take if allow_new else None, ok)
            if allow_new:  # the MAP model is surprised and no new task passed the recall test: plan
                # with the candidate (theta* adapted on the recent window, as GrBAL would) this step
                stuck = ok & surprised[envs, self.current]
                if bool(stuck.any()):
                    self._fallback = (stuck, {k: v.detach() for k, v in cand_params.items()})
        self._m_step(params, x, y, in_d2, weights)

    def _surprise_gate(
        self, losses: torch.Tensor, post: torch.Tensor, made: torch.Tensor | None, ok: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The M step's weights: the posterior, less the models that D2 surprises (see ``surprise``);
        and which models it surprised ``(E, n)``.

        A model is surprised when its error on D2 exceeds ``surprise`` x its running error while it
        was the MAP model (:attr:`level`). Without this, the MAP model's M steps follow a new task
        within a few steps of a switch, before the new-task candidate (adapted on the older D1) has
        any of its data: the tasks merge into one model that forgets the first.
        """
        E, n = post.shape
        losses = torch.nn.functional.pad(losses, (0, n - losses.shape[1]))  # a model made this step: no score
        made = made if made is not None else torch.zeros_like(post, dtype=torch.bool)
        level = self.level[:, :n]
        surprised = (losses > self.cfg.surprise * level) & ~made
        level.copy_(torch.where(made, self._start_level(), level))
        follows = torch.nn.functional.one_hot(self.current, n).bool() & ~surprised & ~made & ok[:, None]
        level.copy_(torch.where(follows, (1 - LEVEL_RATE) * level + LEVEL_RATE * losses, level))
        return post * ~surprised, surprised

    def _in_use(self) -> int:
        """Slots up to the last one holding a model in any environment."""
        return int(self.active.any(0).nonzero().max()) + 1

    def _slots(self, n: int) -> tuple[Params, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Views of the first ``n`` slots: params, active, counts, age."""
        params = {k: v[:, :n] for k, v in self.params.items()}
        return params, self.active[:, :n], self.counts[:, :n], self.age[:, :n]

    def _m_step(self, params: Params, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, post: torch.Tensor) -> None:
        """Every model's gradient step on D2, weighted by its posterior (one batched backward).

        ``params``: views of :attr:`params` (the slots in use), stepped in place. Only the models
        whose weight exceeds :data:`M_STEP_MIN_WEIGHT` in some environment are computed (the
        ``k`` heaviest of each): the posterior is nearly one-hot, and a step of 1e-6 x a gradient
        changes nothing a plan can see, while stepping every model cost most of an update.
        """
        k = int((post > M_STEP_MIN_WEIGHT).sum(1).max())
        if k == 0:
            return
        weight, slot = post.topk(k, dim=1)  # (E, k)
        envs = torch.arange(post.shape[0], device=post.device)[:, None]
        leaves = {name: v[envs, slot].requires_grad_(True) for name, v in params.items()}  # copies (E, k, ...)
        with torch.inference_mode(False), torch.enable_grad():
            loss = (self._losses(leaves, x, y, mask, per_row=False) * weight).sum()
            grads = torch.autograd.grad(loss, list(leaves.values()))
        lr = self.cfg.lr
        with torch.no_grad():
            for (name, v), g in zip(params.items(), grads):
                step = lr if lr > 0 else self.rule.step_size.for_param(name)
                leaf = leaves[name].detach()
                v[envs, slot] = leaf - step * torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)

    def predictor(self, recent: Window | None) -> PredictFn:
        """Update on the newest transitions, then predict with each environment's MAP model."""
        if recent is not None:
            self.update(recent)
        model = self.rule.model
        envs = torch.arange(self.num_envs, device=self.current.device)
        chosen = {k: v[envs, self.current] for k, v in self.params.items()}  # (E, *shape)
        if self._fallback is not None:  # surprised and not a new task: the candidate plans (update)
            stuck, cand = self._fallback
            chosen = {k: torch.where(stuck.view(-1, *([1] * (v.dim() - 1))), cand[k], v) for k, v in chosen.items()}
        onednn.mark_reused(chosen.values())  # as GrBAL's: one plan reads them H x iterations times
        return AdaptedPredictor(model.predict, chosen)


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


def _right_aligned(window: Window, rows: torch.Tensor) -> Window:
    """``window`` with the rows selected by ``rows`` moved to the end (right-aligned, count = their number)."""
    count = rows.sum(1)
    T = rows.shape[1]
    # Stable order: unselected rows first, the selected ones (in time order) last.
    order = torch.argsort(rows.to(torch.int8) * T + torch.arange(T, device=rows.device)[None, :], dim=1)
    pick = lambda t: t.gather(1, order[..., None].expand_as(t))  # noqa: E731
    return Window(pick(window.obs), pick(window.act), pick(window.next_obs), count)
