"""How an ensemble refitted on a run's data errs on held-out episodes, and what it predicts of its error.

A diagnosis, not an evaluation: the run's episodes but the last ``--holdout`` are used to fit a
fresh model (the run's config with ``--refit KEY=VALUE ...`` applied, ``model.ensemble >= 2``),
and on the held-out episodes, per dimension of the normalised state change, it prints the
squared error of the members' mean, the mean squared error of each member, the members'
disagreement (the variance of their means) and their predicted variance (the mean of
``exp(logvar)``), averaged over dimensions and for the forward-velocity dimension. Used for
results/pets/nominal-cpu/ ("Finding 3")::

    .venv/bin/python scripts/ensemble_calibration.py runs/mb-s1-epoch-28k --refit model.ensemble=5
    .venv/bin/python scripts/ensemble_calibration.py runs/mb-s1-epoch-28k \
        --refit model.ensemble=5 model.nll_beta=1.0 fit.max_epochs=60 fit.patience=8
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch

from learn2adapt.data.trajectory_buffer import Episode, TrajectoryBuffer
from learn2adapt.envs.catalog import make_env
from learn2adapt.models.ensemble import EnsembleDynamics
from learn2adapt.run.build import build_rule
from learn2adapt.run.options import apply_overrides
from learn2adapt.run.state import load_run


def first_episodes(buffer: TrajectoryBuffer, count: int) -> TrajectoryBuffer:
    """A new buffer holding the first ``count`` episodes of ``buffer``."""
    out = TrajectoryBuffer(buffer.obs_dim, buffer.act_dim)
    for s in buffer.episode_slices()[:count]:
        tasks = [buffer.task_at(i) for i in range(s.start, s.stop)]
        out.add_episode(
            Episode(buffer.obs[s], buffer.act[s], buffer.next_obs[s], buffer.reward[s], buffer.terminated[s], tasks)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--holdout", type=int, default=2, help="the last HOLDOUT episodes are scored, not fitted")
    parser.add_argument("--refit", nargs="*", default=[], metavar="KEY=VALUE", help="fit/model options")
    args = parser.parse_args()
    torch.set_num_threads(1)
    st = load_run(args.run_dir)
    episodes = st.buffer.episode_slices()
    if not 1 <= args.holdout < len(episodes):
        parser.error(f"--holdout takes 1 to {len(episodes) - 1} episodes (the run has {len(episodes)})")
    cfg = apply_overrides(copy.deepcopy(st.cfg), ["device=cpu", *args.refit])
    env = make_env(cfg.env)
    torch.manual_seed(0)
    rule = build_rule(cfg, env)
    if not isinstance(rule.model, EnsembleDynamics):
        parser.error("the refitted model is not an ensemble: add model.ensemble=5 (or another B >= 2) to --refit")
    rule.fit(first_episodes(st.buffer, len(episodes) - args.holdout), np.random.default_rng(0), progress=False)
    model = rule.model
    held = slice(episodes[-args.holdout].start, episodes[-1].stop)
    obs, act, nxt = (
        torch.as_tensor(np.asarray(x[held]), dtype=torch.float32)
        for x in (st.buffer.obs, st.buffer.act, st.buffer.next_obs)
    )
    with torch.no_grad():
        mean, logvar = model(model.inputs(obs, act).expand(model.members, -1, -1))
        target = model.normalizer.norm_delta(nxt - obs)
        rows = {
            "error of the members' mean": (mean.mean(0) - target).pow(2).mean(0),
            "error of a member": (mean - target).pow(2).mean((0, 1)),
            "disagreement": mean.var(0, unbiased=False).mean(0),
            "predicted variance": logvar.exp().mean((0, 1)),
        }
    spec = getattr(env.unwrapped, "reward_spec", None)
    vel = getattr(spec, "vel_index", None)  # locomotion families only
    print(f"refit {args.refit}; scored on the last {args.holdout} episodes ({len(obs)} transitions)")
    for name, per_dim in rows.items():
        velocity = "" if vel is None else f", velocity {float(per_dim[vel]):.4f}"
        print(f"  {name:28s} mean over dimensions {float(per_dim.mean()):.4f}{velocity}")


if __name__ == "__main__":
    main()
