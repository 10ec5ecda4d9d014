"""What every MPC planner implements, and the batched rollout they share.

Planners know nothing of models: they get a ``predict`` callable and a batched
reward function, and plan for ``E`` environments at once.

Shapes: ``E`` environments, ``N`` candidate action sequences, horizon ``H``.

Reproducibility: every environment slot ``e`` owns its own ``torch.Generator``, and
all random draws for slot ``e`` come from that generator with shapes that do not
depend on ``E``. Planning for four environments at once therefore gives each one the
same result as planning for it alone with that slot's seed (see :meth:`Planner.env_seeds`).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from learn2adapt.errors import ConfigError, UnknownName
from learn2adapt.planning.config import CUDA_GRAPH_NEEDS_FP32, PROPAGATIONS
from learn2adapt.planning.cuda_graph import CaptureNotice, PlanGraphs, RolloutGraphs, storage_key
from learn2adapt.types import PredictFn, RewardFn, TerminationFn

if not TYPE_CHECKING:  # mypy sees no __getattr__, so it still flags a name imported from the wrong module
    from learn2adapt.moved import moved_names

    __getattr__ = moved_names(__name__, {"WarmStartPlanner": "learn2adapt.planning.warm_start"})

#: Accepted values of the ``precision`` option.
PRECISIONS = ("fp32", "bf16", "auto")
#: The notices of a plan that ``cuda_graph`` does not record whole.
DEADLINE = "a plan under a deadline stops on the clock, so it is not recorded whole (its rollouts are)"
CLOSURE = (
    "the model is not a module's method or an AdaptedPredictor (a closure), so its plans are not recorded: "
    "planning eagerly"
)


class Planner(ABC):
    """Model-predictive planner over action sequences of length ``horizon``.

    A real-time caller sets :attr:`deadline` before a plan: iterative planners (CEM, MPPI,
    iCEM) then stop before an iteration that would end past it (:meth:`_iterations`; at least
    one always runs) and return what they return after the iterations done, and random
    shooting evaluates only as many candidates as fit (:meth:`_candidates_that_fit`).

    Args:
        action_low: lower action bounds, shape ``(act_dim,)``.
        action_high: upper action bounds, shape ``(act_dim,)``.
        horizon: planning horizon H.
        num_candidates: candidate sequences N per environment (per iteration).
        device: torch device for sampling.
        seed: an int (environment slot ``e`` gets the derived seed ``env_seeds(seed, E)[e]``)
            or one seed per environment slot.
        num_envs: number of environments, if known (generators are otherwise made on
            first use, for as many slots as ``obs`` has rows).
        precision: ``"fp32"``, ``"bf16"`` (run ``predict`` under ``torch.autocast`` in
            bfloat16; rewards and returns stay fp32) or ``"auto"`` (bf16 on a CPU, fp32 on a GPU).
        particles: trajectory-sampling particles per candidate (PETS): each candidate is rolled
            out ``particles`` times (rows ``n * P + p``, so a stochastic ensemble model can bind
            particle ``p`` to one member for the whole horizon) and its return is their mean.
        propagation: ``"ts_inf"`` (rows keep their particle: TS-inf) or ``"ts1"`` (after every
            step each candidate's particles are shuffled among its ``P`` rows, so under the
            row-to-member binding each particle draws its member anew: TS-1). The shuffle uses
            torch's default generator, as an ensemble's sampled noise does.
        cuda_graph: on a CUDA device in fp32, replay each plan from a recorded CUDA graph of the
            whole plan, or of its model rollouts where the whole plan cannot be recorded, where
            the model allows it (:mod:`learn2adapt.planning.cuda_graph`); ignored on a CPU.
    """

    #: Whether :meth:`plan` may record the whole search as one graph (``cuda_graph``): a planner
    #: whose ``_optimise`` branches on tensor values, or rebinds its state instead of updating it
    #: in place, sets it False and has only its rollouts recorded.
    whole_plan_capture = True

    def __init__(
        self,
        action_low: torch.Tensor,
        action_high: torch.Tensor,
        horizon: int,
        num_candidates: int,
        device: str | torch.device = "cpu",
        seed: int | Sequence[int] = 0,
        *,
        num_envs: int | None = None,
        precision: str = "fp32",
        particles: int = 1,
        propagation: str = "ts_inf",
        cuda_graph: bool = False,
    ) -> None:
        if horizon < 1 or num_candidates < 1 or particles < 1:
            raise ConfigError("planner horizon, num_candidates and particles must be >= 1")
        if precision not in PRECISIONS:
            raise UnknownName(f"unknown planner precision {precision!r}; available: {', '.join(PRECISIONS)}")
        if propagation not in PROPAGATIONS:
            raise UnknownName(f"unknown planner propagation {propagation!r}; available: {', '.join(PROPAGATIONS)}")
        if propagation == "ts1" and particles < 2:
            raise ConfigError(
                "planner.propagation=ts1 re-draws each particle's member every step: set planner.particles >= 2"
            )
        self.device = torch.device(device)
        self.action_low = self._as_bound(action_low)
        self.action_high = self._as_bound(action_high)
        if self.action_low.shape != self.action_high.shape or not bool((self.action_low <= self.action_high).all()):
            raise ConfigError("action_low and action_high must have the same shape and low <= high")
        self.act_dim = int(self.action_low.shape[-1])
        self.horizon = int(horizon)
        self.num_candidates = int(num_candidates)
        self.particles = int(particles)
        #: Particles shuffled among a candidate's rows after every step (TS-1); 1: never.
        self.shuffle_particles = self.particles if propagation == "ts1" else 1
        #: ``auto``: bf16 on a CPU (2-5x faster there, same ranking: ``bench --run``), fp32 on a GPU
        #: (where planning at these sizes is launch-bound and bf16 measured slower).
        self.precision = ("fp32" if self.device.type == "cuda" else "bf16") if precision == "auto" else precision
        # Deterministic answer when no candidate has a finite predicted return.
        self.action_mid = 0.5 * (self.action_low + self.action_high)
        self.action_half_range = 0.5 * (self.action_high - self.action_low)
        self._seed = seed
        self.generators: list[torch.Generator] = []
        if not isinstance(seed, int):
            self._make_generators(len(list(seed)))
        elif num_envs is not None:
            self._make_generators(int(num_envs))
        self._buffers: dict[str, torch.Tensor] = {}
        if cuda_graph and self.device.type == "cuda" and self.precision != "fp32":
            raise ConfigError(CUDA_GRAPH_NEEDS_FP32)
        graphed = cuda_graph and self.device.type == "cuda"
        #: Recorded rollouts (None: every rollout runs eagerly).
        self.graphs = RolloutGraphs() if graphed else None
        #: Recorded whole plans (None: plans are not recorded whole; their rollouts may be).
        self.plan_graphs = PlanGraphs() if graphed and self.whole_plan_capture else None
        self._recording_plan = False  # inside a whole plan's recording: rollouts run as recorded code
        self._recorded_work = 0  # :attr:`last_work` of a recorded plan
        self._noticed: set[str] = set()
        self._fallbacks = torch.zeros((), dtype=torch.long, device=self.device)
        #: ``time.perf_counter()`` by which the next plan must return; ``None``: no deadline.
        self.deadline: float | None = None
        #: Iterations (or, for random shooting, candidates) the last plan evaluated.
        self.last_work = 0
        self._iteration_seconds = 0.0  # the last measured iteration

    # --- deadlines ---------------------------------------------------------------------------
    def _now(self) -> float:
        if self.device.type == "cuda":  # kernels run asynchronously: the clock must wait for them
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _iterations(self, count: int) -> Iterator[int]:
        """``range(count)``, stopping before an iteration that the last one's duration says would end past
        :attr:`deadline` (the first always runs); :attr:`last_work` counts those run."""
        self.last_work = 0
        for i in range(count):
            start = self._now() if self.deadline is not None else 0.0
            if i > 0 and self.deadline is not None and start + self._iteration_seconds > self.deadline:
                return
            yield i
            self.last_work = i + 1
            if self.deadline is not None:
                self._iteration_seconds = self._now() - start

    def _as_bound(self, value: object) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            value = np.asarray(value, dtype=np.float32)
        return torch.as_tensor(value, dtype=torch.float32, device=self.device).reshape(-1)

    # --- seeding -----------------------------------------------------------------------------
    @staticmethod
    def env_seeds(seed: int, num_envs: int) -> list[int]:
        """The per-slot seeds an int ``seed`` stands for (pass one as ``seed=[s]`` to plan alone)."""
        return [int(np.random.SeedSequence([int(seed), e]).generate_state(1)[0]) for e in range(num_envs)]

    def _make_generators(self, num_envs: int) -> None:
        if isinstance(self._seed, int):
            seeds = self.env_seeds(self._seed, num_envs)
        else:
            seeds = [int(s) for s in self._seed]
            if len(seeds) < num_envs:
                raise ValueError(
                    f"planner got {len(seeds)} per-environment seeds but plans for {num_envs} environments"
                )
        while len(self.generators) < num_envs:
            g = torch.Generator(device=self.device)
            g.manual_seed(seeds[len(self.generators)])
            self.generators.append(g)

    # --- buffers -----------------------------------------------------------------------------
    def _buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A scratch tensor reused across calls while its shape is unchanged.

        Why: fresh multi-megabyte allocations on every step cause page-fault storms
        (glibc returns large blocks to the OS); reusing them keeps the hot path flat.
        """
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = torch.empty(shape, dtype=dtype, device=self.device)
            self._buffers[name] = buf
        return buf

    # --- episode boundaries ----------------------------------------------------------------------
    def reset(self, env_mask: torch.Tensor | None = None) -> None:
        """Forget warm-start state for the environments in ``env_mask`` (all if None).

        Called at episode starts. Stateless planners need not override it.
        """

    def _mask_indices(self, env_mask: torch.Tensor | None, num_envs: int) -> torch.Tensor:
        """Indices (on the planner's device) selected by a boolean or index mask; all when None."""
        if env_mask is None:
            return torch.arange(num_envs, device=self.device)
        mask = torch.as_tensor(env_mask, device=self.device)
        if mask.dtype == torch.bool:
            return mask.nonzero().reshape(-1)
        return mask.reshape(-1).long()

    # --- the shared hot path ---------------------------------------------------------------------
    def _autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def evaluate(
        self,
        predict: PredictFn,
        reward_fn: RewardFn,
        obs: torch.Tensor,
        actions: torch.Tensor,
        termination_fn: TerminationFn | None = None,
    ) -> torch.Tensor:
        """Predicted return of every candidate; non-finite returns become ``-inf``.

        Args:
            predict: batched one-step model.
            reward_fn: batched reward.
            obs: ``(E, obs_dim)`` start observations.
            actions: ``(E, N, H, act_dim)`` candidate sequences (within bounds).
            termination_fn: optional; rewards after a predicted termination count 0.

        Returns:
            ``(E, N)`` fp32 returns (a reused buffer: copy it to keep it past the next call); with
            particles, the mean over each candidate's particles.
        """
        if self.graphs is not None and not self._recording_plan:
            returns = self.graphs.run(
                lambda p, o, a: self._evaluate(p, reward_fn, o, a, termination_fn),
                predict,
                (reward_fn, termination_fn),
                obs,
                actions,
                keep=self._buffers.values,
            )
            if returns is not None:
                return returns
            if storage_key(predict) is None:
                self._notice(CLOSURE)
        return self._evaluate(predict, reward_fn, obs, actions, termination_fn)

    def _evaluate(
        self,
        predict: PredictFn,
        reward_fn: RewardFn,
        obs: torch.Tensor,
        actions: torch.Tensor,
        termination_fn: TerminationFn | None,
    ) -> torch.Tensor:
        P = self.particles
        if P > 1:  # every candidate P times in a row: rows n * P + p
            candidates = actions.shape[1]
            mean = self._buffer(f"particle_mean{candidates}", (actions.shape[0], candidates))
            returns = self.evaluate_rows(
                predict, reward_fn, obs, actions.repeat_interleave(P, dim=1), termination_fn, self.shuffle_particles
            )
            torch.mean(returns.view(actions.shape[0], candidates, P), dim=-1, out=mean)
            return mean
        return self.evaluate_rows(predict, reward_fn, obs, actions, termination_fn)

    def evaluate_rows(
        self,
        predict: PredictFn,
        reward_fn: RewardFn,
        obs: torch.Tensor,
        actions: torch.Tensor,
        termination_fn: TerminationFn | None = None,
        shuffle: int = 1,
    ) -> torch.Tensor:
        """:meth:`evaluate` of every row of ``actions (E, R, H, act_dim)`` once (no particles).

        ``shuffle > 1``: after every step the states (and termination flags) of each block of
        ``shuffle`` consecutive rows are permuted at random within the block. A row's return
        then sums the rewards of several particles, but each block's total is unchanged, and
        blocks (a candidate's particles, which share its actions) are all the caller reads.
        """
        E, N, H, _ = actions.shape
        returns = self._buffer(f"returns{N}", (E, N))
        returns.zero_()
        state = self._buffer(f"start{N}", (E, N, obs.shape[-1]), obs.dtype)
        state.copy_(obs.unsqueeze(1))  # contiguous start: some models reshape their input
        alive = None
        if termination_fn is not None:
            alive = self._buffer(f"alive{N}", (E, N), torch.bool)
            alive.fill_(True)
        device_type = obs.device.type
        # no_grad rather than inference_mode: inference tensors cannot be updated in place
        # later outside inference mode, and planners keep warm-start state across calls.
        # One autocast region for the whole rollout: leaving it drops autocast's cache of
        # bf16 weight copies, so entering it per step would recast the weights every step.
        with torch.no_grad(), self._autocast(device_type):
            for t in range(H):
                act = actions[:, :, t]
                nxt = predict(state, act)
                if nxt.dtype != torch.float32:
                    nxt = nxt.float()
                with torch.autocast(device_type, enabled=False):  # rewards in fp32
                    reward = reward_fn(state, act, nxt)
                    if alive is None or termination_fn is None:
                        returns.add_(reward)
                    else:
                        # where, not multiply: states after a termination may be NaN.
                        returns.add_(torch.where(alive, reward, 0.0))
                        alive.logical_and_(~termination_fn(state, act, nxt).bool())
                state = nxt
                if shuffle > 1 and t + 1 < H:
                    rows = self._shuffled_rows(E, N, shuffle)
                    state = torch.gather(state, 1, rows.unsqueeze(-1).expand_as(state))
                    if alive is not None:
                        alive = torch.gather(alive, 1, rows)
            # NaN / inf: a model that blew up; rank those candidates last.
            returns.nan_to_num_(nan=-torch.inf, posinf=-torch.inf, neginf=-torch.inf)
        return returns

    def _shuffled_rows(self, num_envs: int, rows: int, block: int) -> torch.Tensor:
        """``(E, rows)`` source rows: a uniformly random permutation within each block of ``block`` rows."""
        order = torch.rand(num_envs, rows // block, block, device=self.device).argsort(dim=-1)
        start = torch.arange(0, rows, block, device=self.device).unsqueeze(-1)
        return (order + start).reshape(num_envs, rows)

    def _fallback(self, action: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        """Replace the actions of environments with no finite return by the action midpoint.

        No branch on the data: a plan never waits for the device (the count is read lazily).
        """
        bad = ~ok
        self._fallbacks += bad.sum()
        return torch.where(bad.unsqueeze(-1), self.action_mid, action)

    @property
    def num_fallbacks(self) -> int:
        """Plans (environment x call) where no candidate had a finite return (diagnostics)."""
        return int(self._fallbacks)

    def plan(
        self,
        predict: PredictFn,
        reward_fn: RewardFn,
        obs: torch.Tensor,
        termination_fn: TerminationFn | None = None,
    ) -> torch.Tensor:
        """Return the first action of the best plan for each environment.

        Args:
            predict: batched one-step model, see :data:`PredictFn`.
            reward_fn: batched reward, see :data:`RewardFn`.
            obs: current observations, shape ``(E, obs_dim)``.
            termination_fn: optional; rewards after a predicted termination count 0.

        Returns:
            Actions of shape ``(E, act_dim)`` within the action bounds. If no candidate
            of an environment has a finite predicted return, that environment gets the
            midpoint of the action bounds (a deterministic fallback).
        """
        with torch.no_grad():
            obs = obs.to(self.device, torch.float32)
            if self.plan_graphs is not None:
                action = self._plan_recorded(predict, reward_fn, obs, termination_fn)
                if action is not None:
                    return action
            return self._optimise(predict, reward_fn, obs, termination_fn)

    # --- whole-plan graphs (planner.cuda_graph) ------------------------------------------------
    def _notice(self, why: str) -> None:
        """A one-line notice, once per planner and reason, that something recordable runs eagerly."""
        if why not in self._noticed:
            self._noticed.add(why)
            warnings.warn(f"planner.cuda_graph: {why}", CaptureNotice, stacklevel=4)

    def _capture_state(self, num_envs: int) -> list[torch.Tensor]:
        """The tensors a plan for ``num_envs`` environments reads and updates in place, made now
        as its first plan would make them (a recorded plan works on them where they are)."""
        return [self._fallbacks]

    def _plan_recorded(
        self, predict: PredictFn, reward_fn: RewardFn, obs: torch.Tensor, termination_fn: TerminationFn | None
    ) -> torch.Tensor | None:
        """:meth:`_optimise` replayed from a graph of the whole plan, or None: plan eagerly."""
        assert self.plan_graphs is not None
        if self.deadline is not None:
            self._notice(DEADLINE)
            return None
        if storage_key(predict) is None:
            self._notice(CLOSURE)
            return None
        num_envs = obs.shape[0]
        self._make_generators(num_envs)  # generators cannot be made inside a graph

        def search(model: PredictFn, static_obs: torch.Tensor) -> torch.Tensor:
            self._recording_plan = True
            try:
                return self._optimise(model, reward_fn, static_obs, termination_fn)
            finally:
                self._recording_plan = False
                self._recorded_work = self.last_work

        action = self.plan_graphs.run(
            search,
            predict,
            (reward_fn, termination_fn),
            obs,
            self._capture_state(num_envs),
            self.generators[:num_envs],
            keep=self._buffers.values,
        )
        if action is None:
            return None
        self.last_work = self._recorded_work
        return action.clone()  # the recorded output is overwritten by the next replay

    @abstractmethod
    def _optimise(
        self, predict: PredictFn, reward_fn: RewardFn, obs: torch.Tensor, termination_fn: TerminationFn | None
    ) -> torch.Tensor:
        """What a planner implements: :meth:`plan`'s search, with ``obs`` fp32 on :attr:`device`
        and gradients off. Score candidates with :meth:`evaluate`; end with :meth:`_fallback`."""
