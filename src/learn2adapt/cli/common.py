"""Argument groups and checks that several subcommands share, in several modules of :mod:`learn2adapt.cli`."""

from __future__ import annotations

import argparse
from pathlib import Path

from learn2adapt.errors import ConfigError


def config_args(p: argparse.ArgumentParser) -> None:
    """``--env``, ``--algo``, ``--preset``, ``--seed``, ``--set``: the options that resolve a run's configuration."""
    from learn2adapt.adaptation import ALGORITHMS
    from learn2adapt.run.presets import describe_presets  # the names in learn2adapt/presets/
    from learn2adapt.run.resolve import DEFAULT_ENV

    p.add_argument("--env", default=None, help=f"environment id (see `learn2adapt envs`; default {DEFAULT_ENV})")
    p.add_argument("--algo", default=None, help=f"{' | '.join(ALGORITHMS)} (default: the preset's, else mb)")
    p.add_argument(
        "--preset", default=None, help=f"preset of the environment family: {describe_presets()} (default quick)"
    )
    p.add_argument("--seed", type=int, default=None, help="run seed (overrides the preset)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any option, e.g. --set planner.horizon=15 (repeatable; `learn2adapt options` lists them)",
    )


def resolved_config(args: argparse.Namespace):
    """The validated configuration the options of :func:`config_args` (and ``--offline``) give."""
    from learn2adapt.run.resolve import resolve_config

    return resolve_config(args.env, args.preset, args.algo, args.set or [], getattr(args, "offline", None), args.seed)


def restamp_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--restamp-checkpoint",
        action="store_true",
        help="accept, once, a checkpoint that has no checksum (written before checkpoints were stamped) "
        "and write it again with one; a checkpoint whose checksum does not match is never accepted",
    )


def restamp_if_asked(args: argparse.Namespace, run_dir: Path) -> None:
    from learn2adapt.run.checkpoint import CHECKPOINT_NAME, restamp_checkpoint

    if getattr(args, "restamp_checkpoint", False) and restamp_checkpoint(run_dir / CHECKPOINT_NAME):
        print(f"re-stamped {run_dir / CHECKPOINT_NAME} with a checksum", flush=True)


def test_time_args(p: argparse.ArgumentParser) -> None:
    """``--set`` of test-time options and ``--quiet``: the options of a command that re-runs a trained run."""
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change a test-time option of the run, e.g. planner.particles=20 "
        "(planner.*, adaptation.mixture.*, adaptation.guard, eval.*; repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def check_episodes(episodes: int | None) -> None:
    """``--episodes``, where given, is at least 1."""
    if episodes is not None and episodes < 1:
        raise ConfigError("--episodes must be >= 1")
