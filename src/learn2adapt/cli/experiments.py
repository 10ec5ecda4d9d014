"""``compare``, ``sweep``, ``demo``, ``claims``, ``aggregate``: many runs trained, evaluated and reported."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from learn2adapt.errors import ConfigError


def algos_of(text: str) -> list[str]:
    algos = [a.strip().lower() for a in text.split(",") if a.strip()]
    if not algos:
        raise ConfigError("--algos needs at least one algorithm, e.g. --algos grbal,mb")
    return algos


def step_counts(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--at-steps {text!r}: expected comma-separated step counts, e.g. 12000,24000") from None


def workers_of(n: int | None) -> int:
    if n is not None and n < 1:
        raise ConfigError("--workers must be >= 1")
    return n or 1


def seeds_of(n: int) -> list[int]:
    if n < 1:
        raise ConfigError("--seeds must be >= 1")
    return list(range(n))


def runner_of(args: argparse.Namespace):
    """The runner the ``--runner`` options ask for (compare, sweep)."""
    from learn2adapt.experiments.runner import make_runner

    return make_runner(workers_of(args.workers), args.runner, args.ray_address, args.cpus_per_job, args.max_retries)


def print_verdict(report: Path) -> None:
    summary = json.loads((report.parent / "summary.json").read_text())
    print("\n".join(line.replace("**", "") for line in summary.get("verdict", [])))
    print(f"report: {report}")


def job_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that trains and evaluates many runs (compare, sweep)."""
    from learn2adapt.experiments.execution import STORAGES
    from learn2adapt.experiments.runner import RUNNERS
    from learn2adapt.run.presets import describe_presets  # the names in learn2adapt/presets/

    p.add_argument("--env", default="learn2adapt/PendulumVaried-v0", help="environment id (see `learn2adapt envs`)")
    p.add_argument("--preset", default="quick", help=f"preset of the environment family: {describe_presets()}")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override an option of every run (repeatable)")
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes per test task and seed")
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p.add_argument("--workers", type=int, default=1, help="local/process runners: runs in parallel; 1: sequential")
    p.add_argument(
        "--runner", default=None, choices=RUNNERS, help="where jobs run (default: local for 1 worker, else process)"
    )
    p.add_argument(
        "--ray-address", default=None, help="--runner ray: a cluster's address, or auto (default: a local instance)"
    )
    p.add_argument("--cpus-per-job", type=int, default=1, help="--runner ray: CPUs (and torch threads) of each job")
    p.add_argument("--max-retries", type=int, default=1, help="--runner ray: retries of a job that fails or dies")
    p.add_argument(
        "--storage",
        default="shared",
        choices=STORAGES,
        help="shared: jobs write under --out (every worker must see it); copy: each job writes locally and its run "
        "directory is copied back when it finishes",
    )
    p.add_argument(
        "--no-checkpoints", action="store_true", help="--storage copy: do not copy checkpoints (the replay data) back"
    )


def compare_args(p: argparse.ArgumentParser) -> None:
    from learn2adapt.adaptation import ALGORITHMS, PAPER_ALGORITHMS

    job_args(p)
    p.add_argument(
        "--algos",
        default=",".join(PAPER_ALGORITHMS),
        help=f"comma-separated algorithms ({', '.join(ALGORITHMS)}), each optionally with a variant: ALGO+VARIANT, "
        "e.g. grbal+pe (PE-TS + GrBAL: model.ensemble=5, planner.particles=20)",
    )
    p.add_argument(
        "--variant",
        action="append",
        metavar="NAME:KEY=VALUE",
        help="define a variant or change one of its options (repeatable), e.g. pe:planner.particles=5",
    )
    p.add_argument("--seeds", type=int, default=3, help="training seeds per algorithm (0..N-1)")
    p.add_argument(
        "--out",
        default=None,
        help="output directory (default: runs/compare-<env>-<preset>); runs already complete there are reused",
    )
    p.add_argument(
        "--schedule",
        action="append",
        metavar="SPEC",
        help="evaluation schedule (repeatable; default: fixed plus the preset's eval.schedule)",
    )
    p.add_argument(
        "--sample-efficiency",
        action="store_true",
        help="also evaluate every run on the held-out tasks after each iteration / checkpoint: held-out return "
        "against environment steps, and the steps each method needs to reach the best model-based return",
    )
    p.add_argument(
        "--oracle",
        action="store_true",
        help="also evaluate MPC with the simulator as its model (MuJoCo families; the planner of the first "
        "model-based algorithm), reported as the bound a perfect model would reach",
    )
    p.add_argument(
        "--eval-planners",
        default=None,
        metavar="P1,P2",
        help="also evaluate every trained model-based run (and the oracle) planned with each of these planners "
        "(rs, cem, mppi, icem), without retraining, e.g. rs,cem; the report tables them side by side. Training "
        "keeps the preset's planner",
    )
    p.add_argument(
        "--at-steps",
        default=None,
        metavar="N1,N2",
        help="also evaluate every run while it trains, at the first checkpoint at or past each of these "
        "environment-step counts (every schedule and --eval-planners planner), e.g. 12000,24000,36000,48000; "
        "the report tables held-out return by budget, with paired differences against the model-free and global "
        "models, and draws it",
    )
    p.add_argument(
        "--reuse-stale-evaluations",
        action="store_true",
        help="reuse evaluations written by another version of the code (default: evaluate those runs again, "
        "keeping the old eval.json as eval-<code>.json, so every row of the report comes from one code)",
    )


def cmd_compare(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.compare import compare

    algos = algos_of(args.algos)
    seeds = seeds_of(args.seeds)
    with runner_of(args) as runner:
        report = compare(
            args.env,
            args.preset,
            algos,
            seeds,
            Path(args.out) if args.out else None,
            runner,
            overrides=args.set or [],
            schedules=args.schedule,
            eval_episodes=args.episodes,
            progress=not args.quiet,
            storage=args.storage,
            keep_checkpoints=not args.no_checkpoints,
            sample_efficiency=args.sample_efficiency,
            oracle=args.oracle,
            variants=args.variant or [],
            reuse_stale=args.reuse_stale_evaluations,
            eval_planners=[n.strip() for n in args.eval_planners.split(",") if n.strip()] if args.eval_planners else [],
            at_steps=step_counts(args.at_steps),
        )
    print_verdict(report)
    return 0


def sweep_args(p: argparse.ArgumentParser) -> None:
    job_args(p)
    p.add_argument("--algo", default="grbal", help="the algorithm swept")
    p.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2",
        help="an option and its values (repeatable: the grid is their product), e.g. --grid adaptation.inner_lr=0.001,0.01",
    )
    p.add_argument("--samples", type=int, default=None, help="random search: this many points of the grid")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per point (0..N-1)")
    p.add_argument(
        "--out", default=None, help="output directory (default: runs/sweep-<env>-<algo>); reused on a re-run"
    )
    p.add_argument("--schedule", default="fixed", help="evaluation schedule")


def cmd_sweep(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.sweep import default_sweep_dir, parse_grid, sweep

    grid = parse_grid(args.grid or [])
    out = Path(args.out) if args.out else default_sweep_dir(args.env, args.algo)
    with runner_of(args) as runner:
        report = sweep(
            args.env,
            args.preset,
            args.algo,
            grid,
            seeds_of(args.seeds),
            out,
            runner,
            overrides=args.set or [],
            samples=args.samples,
            schedule=args.schedule,
            eval_episodes=args.episodes,
            progress=not args.quiet,
            storage=args.storage,
        )
    summary = json.loads((report.parent / "sweep.json").read_text())
    best = summary["best"]
    print(f"best point: {best['options']} return {best['return']['mean']:.1f} ± {best['return']['ci95']:.1f}")
    print(f"report: {report}")
    return 0


def demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output directory (default: runs/demo)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per algorithm (3 = the protocol's minimum)")
    p.add_argument("--workers", type=int, default=None, help="runs in parallel (default: 2, or 1 on one core)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def cmd_demo(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.demo import DEMO_ENV, DEMO_OUT, DEMO_PRESET, default_workers, run_demo

    t0 = time.time()
    workers = workers_of(args.workers if args.workers is not None else default_workers())
    out = Path(args.out) if args.out else DEMO_OUT
    print(
        f"learn2adapt demo: GrBAL vs MB on {DEMO_ENV} (preset {DEMO_PRESET}), {args.seeds} seed(s), held-out "
        f"tasks with a mid-episode switch; about 5-10 minutes on 2 cores. Output: {out}",
        flush=True,
    )
    report = run_demo(out, seeds_of(args.seeds), workers, progress=not args.quiet)
    print_verdict(report)
    print(f"demo finished in {time.time() - t0:.0f} s")
    return 0


def claims_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "comparisons", nargs="+", help="`learn2adapt compare` output directories or report directories, one per domain"
    )
    p.add_argument("--out", default="runs/claims", help="output directory of claims.md / claims.json")


def cmd_claims(args: argparse.Namespace) -> int:
    from learn2adapt.reporting.claims import write_claims

    path = write_claims([Path(p) for p in args.comparisons], Path(args.out))
    print(f"claims: {path}")
    return 0


def aggregate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("comparisons", nargs="+", help="output directories of `learn2adapt compare`, one per domain")
    p.add_argument("--schedule", default="fixed", help="evaluation schedule to aggregate (default fixed)")
    p.add_argument("--out", default=None, help="output directory (default: runs/aggregate)")


def cmd_aggregate(args: argparse.Namespace) -> int:
    from learn2adapt.reporting.aggregate import aggregate

    path = aggregate([Path(p) for p in args.comparisons], args.schedule, Path(args.out) if args.out else None)
    print(f"aggregate: {path}")
    return 0
