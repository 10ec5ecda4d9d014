"""Time and profile one late GrBAL ``paper`` fit on synthetic data of the paper run's final size.

A diagnosis of where a fit's time goes (meta-steps, validation passes, Adam), not a benchmark of
its quality: the transitions are random walks, so the fit learns nothing useful, but every
tensor has the shape and count of the real run's last fit (255 episodes of 1,000 steps, MLP
512x3, meta-batch 10, M = K = 16). Used for docs/experiments.md ("What the 1.5x target needs")::

    .venv/bin/python scripts/profile_paper_fit.py --threads 1 --set fit.precision=bf16 fit.max_steps=1500
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch

from learn2adapt.allocator import keep_freed_memory
from learn2adapt.benchmarks.paper_run import paper_config
from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer
from learn2adapt.envs import make_env
from learn2adapt.run.build import build_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=255, help="episodes of 1,000 steps in the buffer")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="options of the paper preset")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    cfg = paper_config(args.set)
    env = make_env(cfg.env)
    rule = build_rule(cfg, env)
    task = env.unwrapped.nominal_task()
    rng = np.random.default_rng(0)
    buffer = TrajectoryBuffer(rule.obs_dim, rule.act_dim)
    length = 1000
    for _ in range(args.episodes):
        obs = (rng.standard_normal((length + 1, rule.obs_dim)).cumsum(0) * 0.1).astype(np.float32)
        act = rng.uniform(-1, 1, (length, rule.act_dim)).astype(np.float32)
        reward = rng.standard_normal(length).astype(np.float32)
        buffer.add_episode(Episode(obs[:-1], act, obs[1:], reward, np.zeros(length, bool), [task] * length))
    rule.begin_fit()  # the first fit of a process imports torch.optim's kernels: not the fit's cost
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    metrics = rule.fit(buffer, rng, progress=False)
    profile.disable()
    print(
        f"fit: {time.perf_counter() - start:.1f} s, {metrics['fit/epochs']:.0f} epochs, "
        f"{metrics['fit/steps']:.0f} meta-steps ({args.threads} threads)"
    )
    pattern = "validation_losses|meta_loss|optim/adam.py.*step|fit_early_stopping"
    pstats.Stats(profile).sort_stats("cumulative").print_stats(pattern)


if __name__ == "__main__":
    main()
