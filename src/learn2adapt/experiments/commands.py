"""The ``compare``, ``video`` and ``demo`` subcommands of ``learn2adapt``.

:func:`add_subcommands` registers them on the CLI's subparsers; each handler
returns an exit code. User errors raise the exception types ``learn2adapt.cli``
prints as one line (``ConfigError`` and its ``UnknownName``, ``FileNotFoundError``,
``CheckpointError``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

#: What ``learn2adapt demo`` runs: the cheapest setting that shows GrBAL's advantage.
DEMO_ENV = "learn2adapt/PendulumVaried-v0"
DEMO_PRESET = "demo"
DEMO_ALGOS = ("grbal", "mb")


def _algos(text: str) -> list[str]:
    algos = [a.strip().lower() for a in text.split(",") if a.strip()]
    if not algos:
        from learn2adapt.errors import ConfigError

        raise ConfigError("--algos needs at least one algorithm, e.g. --algos grbal,mb")
    return algos


def _workers(n: int | None) -> int:
    from learn2adapt.errors import ConfigError

    if n is not None and n < 1:
        raise ConfigError("--workers must be >= 1")
    return n or 1


def _seeds(n: int) -> list[int]:
    from learn2adapt.errors import ConfigError

    if n < 1:
        raise ConfigError("--seeds must be >= 1")
    return list(range(n))


def cmd_compare(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.compare import compare
    from learn2adapt.experiments.runner import make_runner

    algos = _algos(args.algos)
    seeds = _seeds(args.seeds)
    with make_runner(_workers(args.workers)) as runner:
        report = compare(args.env, args.preset, algos, seeds, Path(args.out) if args.out else None, runner,
                         overrides=args.set or [], schedules=args.schedule, eval_episodes=args.episodes,
                         progress=not args.quiet)
    _print_verdict(report)
    return 0


def _print_verdict(report: Path) -> None:
    summary = json.loads((report.parent / "summary.json").read_text())
    print("\n".join(line.replace("**", "") for line in summary.get("verdict", [])))
    print(f"report: {report}")


def cmd_demo(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.compare import compare
    from learn2adapt.experiments.runner import make_runner

    t0 = time.time()
    workers = _workers(args.workers if args.workers is not None else min(2, os.cpu_count() or 1))
    out = Path(args.out) if args.out else Path("runs") / "demo"
    print(f"learn2adapt demo: GrBAL vs MB on {DEMO_ENV} (preset {DEMO_PRESET}), {args.seeds} seed(s), held-out "
          f"tasks with a mid-episode switch; about 5-10 minutes on 2 cores. Output: {out}", flush=True)
    with make_runner(workers) as runner:
        report = compare(DEMO_ENV, DEMO_PRESET, DEMO_ALGOS, _seeds(args.seeds), out, runner,
                         progress=not args.quiet, title="learn2adapt demo: GrBAL vs MB under changing dynamics")
    _print_verdict(report)
    print(f"demo finished in {time.time() - t0:.0f} s")
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.video import render_episode
    from learn2adapt.errors import ConfigError

    task = None
    if args.task:
        try:
            task = json.loads(args.task)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--task is not valid JSON ({e.msg}); e.g. --task '{{\"joint\": 0}}'") from None
        if not isinstance(task, dict):
            raise ConfigError("--task must be a JSON object, e.g. --task '{\"joint\": 0}'")
    out = render_episode(Path(args.run_dir), Path(args.out) if args.out else None, task=task,
                         schedule=args.schedule, seed=args.seed, steps=args.steps, fps=args.fps,
                         progress=not args.quiet)
    print(f"saved {out}")
    return 0


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``compare``, ``video`` and ``demo`` on the ``learn2adapt`` subparsers."""
    from learn2adapt.training.config import describe_presets  # the names in learn2adapt/presets/

    p = subparsers.add_parser("compare", help="train and evaluate several algorithms x seeds, write a report")
    p.add_argument("--env", default="learn2adapt/PendulumVaried-v0", help="environment id (see `learn2adapt envs`)")
    p.add_argument("--preset", default="quick", help=f"preset of the environment family: {describe_presets()}")
    p.add_argument("--algos", default="grbal,rebal,mb,mbde", help="comma-separated algorithms")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per algorithm (0..N-1)")
    p.add_argument("--out", default=None, help="output directory (default: runs/compare-<env>-<preset>); "
                   "runs already complete there are reused")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel (processes); 1: sequential")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override an option of every run (repeatable)")
    p.add_argument("--schedule", action="append", metavar="SPEC",
                   help="evaluation schedule (repeatable; default: fixed plus the preset's eval.schedule)")
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes per test task and seed")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("video", help="render an evaluation episode of a run to MP4 or GIF")
    p.add_argument("run_dir", help="a run directory written by `learn2adapt train`")
    p.add_argument("--task", default=None, help="task as JSON (default: the first held-out test task)")
    p.add_argument("--schedule", default=None, help="task schedule, e.g. switch:t=100 (default: the run's eval.schedule)")
    p.add_argument("--out", default=None, help="output file, .mp4 or .gif (default: RUN_DIR/episode.mp4)")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument("--steps", type=int, default=None, help="episode length (default: the run's evaluation length)")
    p.add_argument("--fps", type=int, default=30, help="frames per second")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_video)

    p = subparsers.add_parser("demo", help="train GrBAL and MB on a small problem, evaluate on held-out tasks, report")
    p.add_argument("--out", default=None, help="output directory (default: runs/demo)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per algorithm (3 = the protocol's minimum)")
    p.add_argument("--workers", type=int, default=None, help="runs in parallel (default: 2, or 1 on one core)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_demo)
