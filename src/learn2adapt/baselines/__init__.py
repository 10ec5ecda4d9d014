"""Model-free baselines: PPO and SAC from stable-baselines3 on the same task distribution.

The paper's headline claim is sample efficiency against model-free RL. ``--algo ppo`` and
``--algo sac`` train stable-baselines3's reference implementations (we do not write PPO or
SAC ourselves) on the training tasks, resampled per episode exactly as the model-based
methods collect, and are evaluated by the same protocol (held-out tasks, schedules, seeds,
``eval.json``), so ``compare`` puts them in one report with GrBAL, ReBAL, MB and MB+DE.
Checkpoints follow the library's rules (:mod:`learn2adapt.baselines.sb3`).
"""

from __future__ import annotations

from learn2adapt.baselines.sb3 import BaselineState, load_baseline, train_baseline

__all__ = ["BaselineState", "load_baseline", "train_baseline"]
