"""``eval``, ``compare-online``, ``oracle``, ``diagnose``, ``video``: a trained run (or the simulator's
own model) on the held-out tasks."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from learn2adapt.cli.common import check_episodes, restamp_arg, restamp_if_asked, test_time_args
from learn2adapt.errors import ConfigError, UserError


def print_eval(result: Any, episodes: int) -> None:
    print(f"{result.algo} on {result.env}, held-out test tasks under {result.schedule} ({episodes} episodes each):")
    for t in result.tasks:
        print(f"  {json.dumps(t.task):50s} return {t.mean:10.2f} +- {t.ci95:.2f}")
    mean = result.to_json()
    print(f"  {'all test tasks':50s} return {mean['mean']:10.2f} +- {mean['ci95']:.2f}")
    if math.isfinite(result.reward_error):
        print(f"  learned reward: root-mean-square error {result.reward_error:.4g} on these episodes")


def print_and_save(evaluation: Any) -> None:
    """Print an evaluation (:class:`~learn2adapt.experiments.evaluate.Evaluation`), then write it:
    a write that fails (a full disk) is one line, and the results it could not save are on the
    screen above it."""
    print_eval(evaluation.result, evaluation.episodes)
    try:
        evaluation.save()
    except UserError as e:  # an atomic write's own line (the file unchanged)
        raise UserError(f"{e}; the results are printed above") from None
    print(f"saved {evaluation.out}")


def eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory written by `learn2adapt train`")
    restamp_arg(p)
    p.add_argument(
        "--episodes", type=int, default=None, help="episodes per test task (default: the run's eval.episodes_per_task)"
    )
    p.add_argument("--schedule", default=None, help="task schedule during episodes (default: the run's eval.schedule)")
    p.add_argument(
        "--seed", type=int, default=None, help="evaluation seed (default: the run's seed, as `compare` evaluates)"
    )
    p.add_argument(
        "--output",
        default=None,
        help="results JSON (default: the schedule's entry of RUN_DIR/eval.json, other schedules kept; with --online "
        "or --set, RUN_DIR/eval-<options>.json)",
    )
    p.add_argument(
        "--online",
        default=None,
        metavar="ALGO",
        help="evaluate with another online rule on the same meta-trained model, e.g. --online mole for a grbal run "
        "(mole-oracle: the mixture told the true task, an upper bound on recall)",
    )
    test_time_args(p)


def cmd_eval(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.evaluate import evaluate_run, held_for_evaluation
    from learn2adapt.run.config import check_schedule

    check_episodes(args.episodes)
    if args.schedule:
        check_schedule(args.schedule)
    run_dir = Path(args.run_dir)
    with held_for_evaluation(run_dir):  # never while `train` writes the run
        restamp_if_asked(args, run_dir)
        evaluation = evaluate_run(
            run_dir,
            args.episodes,
            args.schedule,
            args.seed,
            args.online,
            args.set or [],
            Path(args.output) if args.output else None,
            progress=not args.quiet,
        )
        print_and_save(evaluation)
    return 0


def compare_online_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="meta-trained run directories (GrBAL or MOLe), e.g. runs/cmp/runs/grbal-s*")
    p.add_argument(
        "--schedule", action="append", required=True, metavar="SPEC", help="evaluation schedule (repeatable)"
    )
    p.add_argument("--rules", default="grbal,mole", help="comma-separated online rules, the first the reference")
    p.add_argument("--episodes", type=int, default=None, help="episodes per test task (default: the run's)")
    p.add_argument(
        "--out", required=True, help="folder of the evaluations (reused where present), report.md, summary.json"
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a test-time option of every evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def cmd_compare_online(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.online_rules import compare_online_rules

    check_episodes(args.episodes)
    text, report = compare_online_rules(
        [Path(r) for r in args.runs],
        args.schedule,
        args.rules.split(","),
        Path(args.out),
        args.episodes,
        args.set or [],
        progress=not args.quiet,
        save=None if args.quiet else print_and_save,  # each evaluation shown as `eval` shows it
    )
    print(text)
    print(f"report: {report}")
    return 0


def oracle_args(p: argparse.ArgumentParser) -> None:
    from learn2adapt.adaptation import ALGORITHMS
    from learn2adapt.run.presets import describe_presets  # the names in learn2adapt/presets/
    from learn2adapt.run.resolve import DEFAULT_ENV

    p.add_argument(
        "--env", default=None, help=f"a MuJoCo environment id (see `learn2adapt envs`; default {DEFAULT_ENV})"
    )
    p.add_argument(
        "--preset", default=None, help=f"whose planner and evaluation settings: {describe_presets()} (default quick)"
    )
    p.add_argument("--algo", default=None, help=f"the preset's settings for this algorithm ({' | '.join(ALGORITHMS)})")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override an option, e.g. planner.horizon=15")
    p.add_argument("--schedule", default=None, help="task schedule during episodes (default: the preset's)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per test task (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (the same seed gives `eval`'s initial states)")
    p.add_argument("--output", default=None, help="results JSON (default: runs/oracle-<env>-<preset>.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_oracle(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.evaluate import evaluate_oracle_preset

    check_episodes(args.episodes)
    evaluation = evaluate_oracle_preset(
        args.env,
        args.preset,
        args.algo,
        args.set or [],
        args.schedule,
        args.episodes,
        args.seed,
        Path(args.output) if args.output else None,
        progress=not args.quiet,
    )
    print_and_save(evaluation)
    return 0


def diagnose_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a model-based run directory of a MuJoCo family")
    p.add_argument("--every", type=int, default=10, help="control steps between two diagnosed states (default 10)")
    p.add_argument(
        "--candidates", type=int, default=None, help="random candidates scored per state (default: the run's planner's)"
    )
    p.add_argument("--episodes", type=int, default=1, help="episodes per test task (default 1)")
    p.add_argument("--schedule", default=None, help="task schedule during episodes (default: the run's eval.schedule)")
    p.add_argument(
        "--seed", type=int, default=None, help="evaluation seed (default: the run's, the initial states `eval` uses)"
    )
    p.add_argument("--output", default=None, help="results JSON (default: RUN_DIR/diagnosis.json)")
    test_time_args(p)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from learn2adapt.evaluation.diagnosis import MEASURES
    from learn2adapt.experiments.evaluate import diagnose_run

    if args.episodes < 1 or args.every < 1 or (args.candidates is not None and args.candidates < 2):
        raise ConfigError("--episodes and --every must be >= 1, --candidates >= 2")
    result, out = diagnose_run(
        Path(args.run_dir),
        args.every,
        args.candidates,
        args.episodes,
        args.schedule,
        args.seed,
        args.set or [],
        Path(args.output) if args.output else None,
        progress=not args.quiet,
    )
    summary = result.summary()
    print(
        f"{result.algo} on {result.env} ({result.schedule}): {summary['states']} states, {result.candidates} random "
        f"candidates over H = {result.horizon}, scored by the model and by the simulator"
    )
    for name in MEASURES:
        print(f"  {name:10s} {summary[name]['mean']:10.3f} +- {summary[name]['ci95']:.3f}")
    print(f"saved {out}")
    return 0


def video_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory written by `learn2adapt train`")
    p.add_argument("--task", default=None, help="task as JSON (default: the first held-out test task)")
    p.add_argument(
        "--schedule", default=None, help="task schedule, e.g. switch:t=100 (default: the run's eval.schedule)"
    )
    p.add_argument("--out", default=None, help="output file, .mp4 or .gif (default: RUN_DIR/episode.mp4)")
    p.add_argument("--seed", type=int, default=0, help="episode seed")
    p.add_argument("--steps", type=int, default=None, help="episode length (default: the run's evaluation length)")
    p.add_argument("--fps", type=int, default=30, help="frames per second")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_video(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.video import render_episode

    task = None
    if args.task:
        try:
            task = json.loads(args.task)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--task is not valid JSON ({e.msg}); e.g. --task '{{\"disabled\": [0]}}'") from None
        if not isinstance(task, dict):
            raise ConfigError("--task must be a JSON object, e.g. --task '{\"disabled\": [0]}'")
    out = render_episode(
        Path(args.run_dir),
        Path(args.out) if args.out else None,
        task=task,
        schedule=args.schedule,
        seed=args.seed,
        steps=args.steps,
        fps=args.fps,
        progress=not args.quiet,
    )
    print(f"saved {out}")
    return 0
