"""``train``, ``record``, ``options``, ``envs``: one run, its recordings, its configuration, its environments."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from learn2adapt.cli.common import config_args, resolved_config, restamp_arg, restamp_if_asked
from learn2adapt.errors import ConfigError


@contextlib.contextmanager
def naming_run_on_interrupt(run_dir: Path) -> Iterator[None]:
    """Tag a Ctrl-C or SIGTERM inside the block with the run it stopped (for ``main``'s message)."""
    try:
        yield
    except KeyboardInterrupt as e:
        e.run_dir = run_dir  # type: ignore[attr-defined]
        raise


def train_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--run-dir", default=None, help="output directory (default: runs/<env>-<algo>-s<seed>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue a killed run from its last checkpoint")
    restamp_arg(p)
    p.add_argument(
        "--offline",
        metavar="PATH",
        default=None,
        help="train from a recording (learn2adapt record) or a local Minari dataset's directory instead of "
        "iteration 0's random episodes; with "
        "--set iterations=0 no environment is stepped (--env defaults to the one it was recorded on)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_train(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.runs import train_any as train
    from learn2adapt.run.resolve import default_run_dir

    if args.resume:
        run_dir = Path(args.resume)
        given = [
            f"--{name}"
            for name in ("env", "algo", "preset", "seed", "run_dir", "offline")
            if getattr(args, name) is not None
        ]
        if given:
            raise ConfigError(
                f"{given[0].replace('_', '-')} cannot be combined with --resume: a run keeps its configuration "
                "(only --set iterations=N, to extend it, and --set device=DEV, to move it, may change)"
            )
        changes = dict(item.split("=", 1) if "=" in item else (item, "") for item in args.set or [])
        restamp_if_asked(args, run_dir)
        with naming_run_on_interrupt(run_dir):
            st = train(None, run_dir, resume=True, progress=not args.quiet, changes=changes)
    else:
        if args.restamp_checkpoint:
            raise ConfigError("--restamp-checkpoint needs --resume RUN_DIR (a new run's checkpoints are stamped)")
        cfg = resolved_config(args)
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(cfg)
        with naming_run_on_interrupt(run_dir):
            st = train(cfg, run_dir, progress=not args.quiet)
    print(f"run finished: {run_dir} (iteration {st.iteration}, {st.train_env_steps} environment steps)")
    return 0


def record_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--out", required=True, help="the recording to write (.npz; format: learn2adapt.data.recorded)")
    p.add_argument("--episodes", type=int, default=10, help="episodes to record (default 10)")
    p.add_argument(
        "--policy", default="random", help="random (uniform actions) or a run directory whose controller acts"
    )
    p.add_argument("--split", default="train", help="train | test: where each episode's task is drawn from")
    p.add_argument("--schedule", default="fixed", help="task schedule within episodes (default fixed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_record(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.recording import load_policy_run
    from learn2adapt.run.record import record

    run = None
    if args.policy != "random":
        given = [f"--{k}" for k in ("env", "algo", "preset", "set") if getattr(args, k) is not None]
        if given:
            raise ConfigError(
                f"{given[0]} cannot be combined with --policy RUN_DIR: the run's own configuration is used"
            )
        run = load_policy_run(Path(args.policy))
        cfg = run.cfg
    else:
        cfg = resolved_config(args)
    out = Path(args.out)
    rec = record(cfg, args.episodes, out, run, args.split, args.schedule, args.seed, progress=not args.quiet)
    print(f"recorded {rec.num_episodes} episodes, {len(rec.obs)} transitions of {cfg.env} ({rec.policy}) to {out}")
    return 0


def cmd_options(args: argparse.Namespace) -> int:
    from learn2adapt.run.options import describe_options
    from learn2adapt.run.resolve import DEFAULT_PRESET

    cfg = resolved_config(args)
    options = describe_options(cfg, algo=cfg.algo)
    width = max(len(k) for k, _, _ in options)
    print(
        f"options for --env {cfg.env} --preset {args.preset or DEFAULT_PRESET} --algo {cfg.algo} (override with --set key=value):"
    )
    for key, value, help_text in options:
        print(f"  {key:{width}s}  {value:>18s}  {help_text}")
    return 0


def envs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default=None, help="describe this environment only (any Gymnasium id)")
    p.add_argument("--preset", default=None, help="a preset name or FILE.toml[:NAME] whose task space to use")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. task_space=mass:torso=0.5/1.5")
    p.set_defaults(algo=None, seed=None)


def cmd_envs(args: argparse.Namespace) -> int:
    from learn2adapt.run.resolve import described_envs

    described = described_envs(args.env, args.preset, args.set or [])
    for fam in described:
        print(f"{fam['id']}  obs {fam['obs_dim']}  act {fam['act_dim']}")
        if len(described) == 1:
            print(f"    {fam['summary']}")
        for key in ("train", "test"):
            tasks = fam[key]
            shown = ", ".join(json.dumps(t) for t in tasks[:6]) + (" ..." if len(tasks) > 6 else "")
            print(f"    {key:5s}: {shown}")
        if fam.get("schedules"):
            print(f"    schedules: {', '.join(fam['schedules'])}")
    return 0
