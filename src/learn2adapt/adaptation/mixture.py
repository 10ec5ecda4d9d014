"""MOLe's online mixture of task models, one control step at a time (the algorithm:
:mod:`learn2adapt.adaptation.mole`, docs/algorithms/mole.md).

:meth:`MixtureState.update` takes, per step, the named steps of the module docstring there:
the window split into D1 and D2 (:meth:`~MixtureState._evidence`), the new-task candidate
(:meth:`~MixtureState._candidate`), the E step (:meth:`~MixtureState._e_step`), the new-task
test (:meth:`~MixtureState._new_task`), the drop of superseded provisional models
(:meth:`~MixtureState._drop_provisional`), the surprise gate and the fallback
(:meth:`~MixtureState._gate`) and the M step (:meth:`~MixtureState._m_step`); batched over
environments x models, with no Python loop over either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from learn2adapt.adaptation.grbal import GrBAL
from learn2adapt.adaptation.inner_update import Params, normalised
from learn2adapt.adaptation.online import online_params
from learn2adapt.errors import ConfigError
from learn2adapt.models import onednn
from learn2adapt.types import AdaptedPredictor, PredictFn, Window

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


class _Slots(NamedTuple):
    """Views of the first ``n`` slots (:meth:`MixtureState._slots`). The steps of an update replace
    ``counts`` and ``age`` by new tensors, which :meth:`MixtureState.update` writes back."""

    params: Params
    active: torch.Tensor
    counts: torch.Tensor
    age: torch.Tensor


@dataclass(frozen=True)
class _Candidate:
    """The new-task candidate of one step: theta* adapted on each environment's D1."""

    params: Params  # (E, *shape)
    loss: torch.Tensor  # (E,) its error on D2


class MixtureState:
    """The task models of ``num_envs`` environments, updated once per control step.

    ``params[name]`` is ``(E, n, *shape)``; ``counts`` ``(E, n)`` soft counts; ``active``
    ``(E, n)`` which slots hold a model; ``age`` ``(E, n)`` control steps since each model was
    made; ``current`` ``(E,)`` the MAP model of the last step. :attr:`assignment` and
    :attr:`num_models` are read by the evaluation's recall measures. ``rule``: the
    :class:`~learn2adapt.adaptation.mole.MOLe` rule whose mixture it is (GrBAL's prior).
    """

    def __init__(self, rule: GrBAL, num_envs: int) -> None:
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
        """One control step on the newest transitions of each environment (batched): the E step,
        the new-task test, the drop of provisional models, the counts, and the M step."""
        # Only the slots in use are scored and stepped (views, written in place): a new model
        # takes the lowest free slot, so the models sit at the front, and a mixture of 1-2 models
        # costs what they cost, not max_models' worth. The view grows when a new model needs it.
        view = self._slots(self._in_use())
        ev = self._evidence(recent)
        if ev is None:
            return
        with torch.no_grad():
            losses = self._losses(view.params, ev.x, ev.y, ev.in_d2)  # (E, n)
        cand = self._candidate(ev) if self.n > 1 else None
        post = self._e_step(view, losses, ev, cand)
        made = None
        if cand is not None:
            view, post, made = self._new_task(view, post, losses, cand, ev.ok)
        view, post = self._drop_provisional(view, post, ev.ok)
        n = view.active.shape[1]
        self.counts[:, :n] = view.counts + post
        self.age[:, :n] = view.age + ev.ok[:, None].to(view.age.dtype)
        self.current = torch.where(ev.ok, post.argmax(1), self.current)
        weights = self._gate(losses, post, made, cand, ev.ok)
        self._m_step(view.params, ev.x, ev.y, ev.in_d2, weights)

    def _candidate(self, ev: _Evidence) -> _Candidate:
        """The new-task candidate: theta* adapted on D1 with GrBAL's step, scored on D2."""
        rule, E = self.rule, self.num_envs
        d1 = _right_aligned(ev.window, ev.in_d1)
        cand = online_params(rule.model, d1, rule.step_size, rule.adapt_cfg.inner_steps)
        theta = rule.model.params()
        params = {k: (cand[k] if cand is not None else theta[k].detach().expand(E, *theta[k].shape)) for k in theta}
        with torch.no_grad():
            pred = rule.model.net(ev.x, params)
            err = (pred - ev.y).pow(2).mean(-1)
            loss = torch.where(ev.in_d2, err, 0.0).sum(-1) / ev.in_d2.sum(-1).clamp(min=1)
        return _Candidate(params, loss)

    def _e_step(self, view: _Slots, losses: torch.Tensor, ev: _Evidence, cand: _Candidate | None) -> torch.Tensor:
        """The posterior ``(E, n [+1])`` over the models held and, last, the candidate ``cand``:
        log prior (CRP over the soft counts, sticky bonus) + Gaussian log-likelihood of D2."""
        cfg, counts, active = self.cfg, view.counts, view.active
        entries = (ev.k2 * ev.x.new_tensor(self.rule.obs_dim)).clamp(min=1).to(losses.dtype)  # D2 values per env
        var = self._variance()
        pseudo = counts + cfg.sticky * torch.nn.functional.one_hot(self.current, active.shape[1]).to(counts.dtype)
        total = (counts * active).sum(1, keepdim=True)
        log_prior = torch.where(active, pseudo.clamp(min=1e-12).log(), -torch.inf) - (total + cfg.alpha).log()
        log_lik = -0.5 * entries[:, None] * losses / var
        logits = log_prior + log_lik
        if cand is not None:
            new_logit = math.log(cfg.alpha) - (total[:, 0] + cfg.alpha).log() - 0.5 * entries * cand.loss / var
            logits = torch.cat([logits, new_logit[:, None]], 1)
        return torch.softmax(logits, 1)

    def _new_task(
        self, view: _Slots, post: torch.Tensor, losses: torch.Tensor, cand: _Candidate, ok: torch.Tensor
    ) -> tuple[_Slots, torch.Tensor, torch.Tensor]:
        """The new-task test: where the candidate is the MAP task and no model held errs on D2 within
        ``surprise`` x the candidate's error (the recall test), the candidate becomes a model, in
        the MAP model's slot if that one is provisional (younger than M steps), else in the lowest
        free slot or, at the cap, in that of the model with the smallest count.

        Returns:
            The slots (the view grown by one where a new model needs it), the posterior over them
            (the winner's mass moved to its slot), and where a model was made ``(E, n)``.
        """
        cfg, E, n = self.cfg, self.num_envs, view.active.shape[1]
        params, active, counts, age = view
        wins = ok & (post.argmax(1) == n)
        if cfg.surprise > 0:  # the recall test: a new task only if no model held is within surprise x the candidate
            wins &= torch.where(active, losses > cfg.surprise * cand.loss[:, None], True).all(1)
        young = age[torch.arange(E, device=self.current.device), self.current] < self.rule.adapt_cfg.past
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
                v.copy_(torch.where(take.view(shape), cand.params[k].detach().unsqueeze(1), v))
        active |= take
        self.ids[:, :n] = torch.where(take, self._next_id[:, None], self.ids[:, :n])
        self._next_id += wins.to(self._next_id.dtype)
        # A superseded young model's evidence was the new task's: its count stays.
        counts = torch.where(take & ~young[:, None], 0.0, counts)
        age = torch.where(take, 0.0, age)
        post = torch.where(take, post[:, n : n + 1], post[:, :n])  # the winner's mass moves to its slot
        post = post * active
        post = post / post.sum(1, keepdim=True).clamp(min=1e-12)
        return _Slots(params, active, counts, age), post, take

    def _drop_provisional(self, view: _Slots, post: torch.Tensor, ok: torch.Tensor) -> tuple[_Slots, torch.Tensor]:
        """Provisional models (younger than M steps) that lost the MAP to another model are dropped:
        the slots and the posterior without them (zero where an environment takes no step)."""
        envs = torch.arange(self.num_envs, device=self.current.device)
        was = self.current
        drop = ok & (post.argmax(1) != was) & (view.age[envs, was] < self.rule.adapt_cfg.past)
        gone = torch.nn.functional.one_hot(was, view.active.shape[1]).bool() & drop[:, None]
        active = view.active
        active &= ~gone
        counts = torch.where(gone, 0.0, view.counts)
        post = post * ~gone
        post = post / post.sum(1, keepdim=True).clamp(min=1e-12)
        return view._replace(counts=counts), torch.where(ok[:, None], post, 0.0)

    def _gate(
        self,
        losses: torch.Tensor,
        post: torch.Tensor,
        made: torch.Tensor | None,
        cand: _Candidate | None,
        ok: torch.Tensor,
    ) -> torch.Tensor:
        """The M step's weights: the posterior, less the models that D2 surprises (with
        ``surprise``, :meth:`_surprise_gate`). And the fallback: where the MAP model is surprised
        and no new task passed the recall test, the candidate (theta* adapted on the recent
        window, as GrBAL would) plans this step (:meth:`predictor`)."""
        self._fallback = None
        if not self.cfg.surprise > 0:
            return post
        weights, surprised = self._surprise_gate(losses, post, made, ok)
        if cand is not None:
            stuck = ok & surprised[torch.arange(self.num_envs, device=self.current.device), self.current]
            if bool(stuck.any()):
                self._fallback = (stuck, {k: v.detach() for k, v in cand.params.items()})
        return weights

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

    def _slots(self, n: int) -> _Slots:
        """Views of the first ``n`` slots: params, active, counts, age."""
        params = {k: v[:, :n] for k, v in self.params.items()}
        return _Slots(params, self.active[:, :n], self.counts[:, :n], self.age[:, :n])

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


def _right_aligned(window: Window, rows: torch.Tensor) -> Window:
    """``window`` with the rows selected by ``rows`` moved to the end (right-aligned, count = their number)."""
    count = rows.sum(1)
    T = rows.shape[1]
    # Stable order: unselected rows first, the selected ones (in time order) last.
    order = torch.argsort(rows.to(torch.int8) * T + torch.arange(T, device=rows.device)[None, :], dim=1)
    pick = lambda t: t.gather(1, order[..., None].expand_as(t))  # noqa: E731
    return Window(pick(window.obs), pick(window.act), pick(window.next_obs), count)
