"""The MPC agent: online adaptation + planning, for several environments at once.

At every control step each environment's last M transitions adapt the model
(the rule starts again from its fitted parameters), and the planner picks the
first action of the best sequence under the adapted model (Nagabandi et al.,
2019, Alg. 2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from learn2adapt.adaptation.base import AdaptationRule
from learn2adapt.data.recent_history import RecentHistory
from learn2adapt.planning.base import Planner
from learn2adapt.types import PredictFn, RewardFn, TerminationFn


class MPCAgent:
    """Adapt-then-plan controller implementing the rollout ``Policy`` protocol.

    Args:
        rule: the adaptation rule (MB, MB+DE, GrBAL, ReBAL).
        planner: the MPC planner.
        reward_fn: batched reward of the environment.
        num_envs: environments acted for at once.
        termination_fn: optional batched termination flags.
    """

    def __init__(
        self,
        rule: AdaptationRule,
        planner: Planner,
        reward_fn: RewardFn,
        num_envs: int,
        termination_fn: TerminationFn | None = None,
    ) -> None:
        self.rule, self.planner = rule, planner
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        self.device = rule.device
        self.history = RecentHistory(num_envs, rule.history_length, rule.obs_dim, rule.act_dim, device=self.device)
        self.num_envs = num_envs
        #: Adaptation state kept from step to step (MOLe's task models); None for stateless rules.
        self.online = rule.online_state(num_envs)
        if planner.graphs is not None:  # planner.cuda_graph on a GPU: the adaptation step is recorded too
            rule.record_graphs(planner.graphs.capture)

    def reset(self, env_index: int) -> None:
        self.history.reset(env_index)
        if self.online is not None:
            self.online.reset(env_index, episode_start=True)
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        mask[env_index] = True
        self.planner.reset(mask)

    def predictor(self) -> PredictFn:
        """The model the next plan uses: adapted on each environment's recent transitions."""
        recent = self.history.data if self.rule.history_length > 0 else None
        return self.rule.predictor(recent) if self.online is None else self.online.predictor(recent)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        predict = self.predictor()
        with torch.no_grad():
            actions = self.planner.plan(predict, self.reward_fn, obs_t, self.termination_fn)
        return actions.cpu().numpy()

    def observe(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        if self.rule.history_length > 0:
            t: Callable[[np.ndarray], torch.Tensor] = lambda x: torch.as_tensor(
                x, dtype=torch.float32, device=self.device
            )  # noqa: E731
            self.history.push(t(obs), t(act), t(next_obs))
