"""The parser (every subcommand in one table, :data:`SUBCOMMANDS`) and :func:`main`: a user's error
as one line (exit 2), Ctrl-C and SIGTERM as one line naming what to resume (exit 130 / 143)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from learn2adapt.allocator import keep_freed_memory
from learn2adapt.cli.bench import bench_args, cmd_bench
from learn2adapt.cli.common import config_args
from learn2adapt.cli.evaluate import (
    cmd_compare_online,
    cmd_diagnose,
    cmd_eval,
    cmd_oracle,
    cmd_video,
    compare_online_args,
    diagnose_args,
    eval_args,
    oracle_args,
    video_args,
)
from learn2adapt.cli.experiments import (
    aggregate_args,
    claims_args,
    cmd_aggregate,
    cmd_claims,
    cmd_compare,
    cmd_demo,
    cmd_sweep,
    compare_args,
    demo_args,
    sweep_args,
)
from learn2adapt.cli.run import cmd_envs, cmd_options, cmd_record, cmd_train, envs_args, record_args, train_args
from learn2adapt.errors import Terminated, UserError

# MUJOCO_GL=egl (headless rendering) is set by `learn2adapt video` only: with EGL loaded,
# MPC collection on MuJoCo envs grows RSS by several MB/s (measured; see docs/experiments.md).

Handler = Callable[[argparse.Namespace], int]
#: Every subcommand, in the order ``learn2adapt --help`` lists them: name -> (help, arguments, handler).
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {
    "train": ("train a model-based agent; writes a run directory", train_args, cmd_train),
    "eval": ("evaluate a run on the environment's held-out test tasks", eval_args, cmd_eval),
    "record": (
        "record episodes of an environment (random actions or a run's controller) for train --offline",
        record_args,
        cmd_record,
    ),
    "compare": ("train and evaluate several algorithms x seeds, write a report", compare_args, cmd_compare),
    "aggregate": (
        "IQM, median, mean with bootstrap CIs and performance profiles over several comparisons (rliable)",
        aggregate_args,
        cmd_aggregate,
    ),
    "claims": (
        "check the paper's claims (GrBAL/ReBAL beat MB and MB+DE, adaptation cuts the error...) per domain",
        claims_args,
        cmd_claims,
    ),
    "demo": ("train GrBAL and MB on a small problem, evaluate on held-out tasks, report", demo_args, cmd_demo),
    "sweep": (
        "grid or random search over options: every point x seed trained and evaluated, a report",
        sweep_args,
        cmd_sweep,
    ),
    "compare-online": (
        "evaluate meta-trained runs with several online rules (e.g. GrBAL's step and MOLe's mixture), "
        "table return and recall, paired on the same models",
        compare_online_args,
        cmd_compare_online,
    ),
    "video": ("render an evaluation episode of a run to MP4 or GIF", video_args, cmd_video),
    "oracle": (
        "evaluate MPC with the simulator as its model on the held-out tasks (the bound of a perfect model)",
        oracle_args,
        cmd_oracle,
    ),
    "diagnose": (
        "score random candidates with a run's model and with the simulator at the states it visits (model exploitation)",
        diagnose_args,
        cmd_diagnose,
    ),
    "envs": (
        "list environment families, their train/test tasks and schedules (or one environment's, with --env / --preset / --set task_space=...)",
        envs_args,
        cmd_envs,
    ),
    "options": ("list every configuration option with its help and resolved value", config_args, cmd_options),
    "bench": ("measure planning, adaptation and meta-training speed on this machine", bench_args, cmd_bench),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="learn2adapt",
        description="learn2adapt: model-based RL that adapts online to changing dynamics (GrBAL, ReBAL, MB, MB+DE, MOLe).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_text, add_arguments, handler) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(func=handler)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _interrupted(e: KeyboardInterrupt) -> int:
    """The line of a Ctrl-C or SIGTERM (:class:`Terminated`), naming the run it stopped if it knows it."""
    how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
    run_dir = getattr(e, "run_dir", None)
    if run_dir is None:
        where = "a run resumes with `learn2adapt train --resume RUN_DIR`"
    elif (Path(run_dir) / "checkpoint.pt").exists():
        where = f"{run_dir} keeps its last checkpoint: resume it with `learn2adapt train --resume {run_dir}`"
    else:
        where = f"{run_dir} holds no checkpoint yet: `learn2adapt train --resume {run_dir}` starts it again"
    print(f"learn2adapt: {how}; {where}", file=sys.stderr)
    return 143 if isinstance(e, Terminated) else 130


def main(argv: Sequence[str] | None = None) -> int:
    # First of all: a signal while the parser imports its registries (seconds on a loaded machine)
    # is handled like one during the work, not a traceback.
    in_main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        keep_freed_memory()
        return func(args)
    except (UserError, FileNotFoundError, FileExistsError) as e:
        print(f"learn2adapt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated): exit 130 / 143, as shells count them
        return _interrupted(e)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, before)
