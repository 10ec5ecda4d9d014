"""The ``learn2adapt`` command line.

Every subcommand's ``--help`` explains its options; ``learn2adapt options``
lists every configuration field with its help and current value.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from learn2adapt.allocator import keep_freed_memory
from learn2adapt.cpus import usable_cpus
from learn2adapt.errors import ConfigError, Terminated, UserError

# MUJOCO_GL=egl (headless rendering) is set by `learn2adapt video` only: with EGL loaded,
# MPC collection on MuJoCo envs grows RSS by several MB/s (measured; see docs/experiments.md).


#: ``--env`` and ``--preset`` when not given.
DEFAULT_ENV, DEFAULT_PRESET = "learn2adapt/PendulumVaried-v0", "quick"


def _env_of(args: argparse.Namespace) -> str:
    """``--env``, else the env a ``--preset FILE.toml`` names, else the one ``--offline FILE`` was recorded on,
    else :data:`DEFAULT_ENV`."""
    from learn2adapt.data.recorded import recorded_env
    from learn2adapt.run.config import preset_env

    offline = getattr(args, "offline", None)
    recorded = recorded_env(Path(offline)) if offline and not (args.env or args.preset) else None
    return args.env or preset_env(args.preset) or recorded or DEFAULT_ENV


def _resolve_config(args: argparse.Namespace):
    from learn2adapt.run.config import apply_overrides, preset_config

    cfg = preset_config(_env_of(args), args.preset or DEFAULT_PRESET, args.algo)
    apply_overrides(cfg, args.set or [])
    if getattr(args, "offline", None):
        cfg.offline = args.offline
    if args.seed is not None:
        cfg.seed = args.seed
    return cfg.validate()


def _default_run_dir(cfg) -> Path:
    from learn2adapt.envs import short_name

    short = short_name(cfg.env)
    return Path("runs") / f"{short}-{cfg.algo}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


@contextlib.contextmanager
def _naming_run_on_interrupt(run_dir: Path) -> Iterator[None]:
    """Tag a Ctrl-C or SIGTERM inside the block with the run it stopped (for ``main``'s message)."""
    try:
        yield
    except KeyboardInterrupt as e:
        e.run_dir = run_dir  # type: ignore[attr-defined]
        raise


def cmd_train(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.runs import train_any as train

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
        _restamp_if_asked(args, run_dir)
        with _naming_run_on_interrupt(run_dir):
            st = train(None, run_dir, resume=True, progress=not args.quiet, changes=changes)
    else:
        if args.restamp_checkpoint:
            raise ConfigError("--restamp-checkpoint needs --resume RUN_DIR (a new run's checkpoints are stamped)")
        cfg = _resolve_config(args)
        run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(cfg)
        with _naming_run_on_interrupt(run_dir):
            st = train(cfg, run_dir, progress=not args.quiet)
    print(f"run finished: {run_dir} (iteration {st.iteration}, {st.train_env_steps} environment steps)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.runs import load_any as load_run
    from learn2adapt.run.config import check_schedule

    if args.episodes is not None and args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    if args.schedule:
        check_schedule(args.schedule)
    if not Path(args.run_dir).is_dir():
        load_run(Path(args.run_dir))  # a missing run: its own message, before a lock file could create it
    with _run_lock_if_possible(Path(args.run_dir)):  # never while `train` writes the run
        _restamp_if_asked(args, Path(args.run_dir))
        return _evaluate_run(args)


@contextlib.contextmanager
def _run_lock_if_possible(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock (:class:`RunDirBusy` if another process writes it); a run directory that
    cannot hold a lock file (read-only) is evaluated unlocked, as nothing can write it either."""
    from learn2adapt.errors import RunDirBusy
    from learn2adapt.run.run_dir import RunLock

    try:
        lock = RunLock(run_dir)
    except RunDirBusy:
        raise
    except UserError:
        yield
        return
    with lock:
        yield


def _evaluate_run(args: argparse.Namespace) -> int:
    from learn2adapt.evaluation.protocol import add_to_protocol, evaluate, save_eval
    from learn2adapt.experiments.runs import load_any as load_run
    from learn2adapt.run.loop import RunState, with_online_rule
    from learn2adapt.run.run_dir import check_writable

    st = load_run(Path(args.run_dir))
    seed = st.cfg.seed if args.seed is None else args.seed
    test_time = [f"seed={seed}"] if seed != st.cfg.seed else []
    test_time += ([f"online={args.online}"] if args.online else []) + list(args.set or [])
    # The run's own evaluation joins its eval.json (which `compare` reuses); one with options
    # changed goes to a file of its own, named after them, unless --output says otherwise.
    name = f"eval-{re.sub(r'[^A-Za-z0-9._=+-]', '-', '_'.join(test_time))}.json" if test_time else "eval.json"
    out = Path(args.output) if args.output else Path(args.run_dir) / name
    if args.online or args.set:
        if not isinstance(st, RunState):
            raise ConfigError(f"--online / --set: a {st.cfg.algo} run has no model to plan or adapt with")
        st = with_online_rule(st, args.online or st.cfg.algo, args.set or [])
    check_writable(out.parent)  # before the evaluation, not after it
    if args.schedule:
        st.cfg.eval.schedule = args.schedule
    result = evaluate(st, episodes_per_task=args.episodes, seed=seed, progress=not args.quiet)
    result.test_time = test_time
    write = save_eval if args.output else add_to_protocol
    _print_and_save(result, args.episodes or st.cfg.eval.episodes_per_task, out, lambda: write(result, out))
    return 0


def _print_and_save(result, episodes: int, out: Path, write: Callable[[], None]) -> None:
    """Print an evaluation, then write it (``write``): a write that fails (a full disk) is one
    line, and the results it could not save are on the screen above it."""
    from learn2adapt.run.run_dir import os_error_message

    _print_eval(result, episodes)
    try:
        write()
    except OSError as e:
        raise UserError(f"{os_error_message(e, f'write {out}')}; the results are printed above") from None
    except UserError as e:  # an atomic write's own line (the file unchanged)
        raise UserError(f"{e}; the results are printed above") from None
    print(f"saved {out}")


def _print_eval(result, episodes: int) -> None:
    print(f"{result.algo} on {result.env}, held-out test tasks under {result.schedule} ({episodes} episodes each):")
    for t in result.tasks:
        print(f"  {json.dumps(t.task):50s} return {t.mean:10.2f} +- {t.ci95:.2f}")
    mean = result.to_json()
    print(f"  {'all test tasks':50s} return {mean['mean']:10.2f} +- {mean['ci95']:.2f}")
    if math.isfinite(result.reward_error):
        print(f"  learned reward: root-mean-square error {result.reward_error:.4g} on these episodes")


def cmd_oracle(args: argparse.Namespace) -> int:
    from learn2adapt.envs import short_name
    from learn2adapt.evaluation.oracle import OracleRun
    from learn2adapt.evaluation.protocol import evaluate, save_eval
    from learn2adapt.run.config import apply_overrides, check_schedule, preset_config
    from learn2adapt.run.run_dir import check_writable

    if args.episodes is not None and args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    preset = args.preset or DEFAULT_PRESET
    cfg = apply_overrides(preset_config(_env_of(args), preset, args.algo), args.set or [])
    if args.schedule:
        check_schedule(args.schedule)
        cfg.eval.schedule = args.schedule
    cfg.validate()
    run = OracleRun(cfg)
    out = Path(args.output) if args.output else Path("runs") / f"oracle-{short_name(cfg.env)}-{preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    check_writable(out.parent)
    result = evaluate(
        run, episodes_per_task=args.episodes, seed=args.seed, progress=not args.quiet, measure_model=False
    )
    result.algo = "oracle"
    _print_and_save(result, args.episodes or cfg.eval.episodes_per_task, out, lambda: save_eval(result, out))
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from learn2adapt.evaluation.diagnosis import MEASURES, diagnose
    from learn2adapt.evaluation.oracle import check_oracle
    from learn2adapt.experiments.runs import load_any as load_run
    from learn2adapt.run.config import check_schedule
    from learn2adapt.run.loop import RunState, with_online_rule
    from learn2adapt.run.run_dir import atomic_write_text, check_writable

    if args.episodes < 1 or args.every < 1 or (args.candidates is not None and args.candidates < 2):
        raise ConfigError("--episodes and --every must be >= 1, --candidates >= 2")
    if args.schedule:
        check_schedule(args.schedule)
    st = load_run(Path(args.run_dir))
    if not isinstance(st, RunState):
        raise ConfigError(f"a {st.cfg.algo} run has no model to diagnose: diagnose a model-based run")
    check_oracle(st.cfg.env)
    if args.set:
        st = with_online_rule(st, st.cfg.algo, args.set)
    out = Path(args.output) if args.output else Path(args.run_dir) / "diagnosis.json"
    check_writable(out.parent)
    result = diagnose(
        st,
        every=args.every,
        candidates=args.candidates or st.cfg.planner.num_candidates,
        episodes_per_task=args.episodes,
        schedule=args.schedule,
        seed=st.cfg.seed if args.seed is None else args.seed,
        progress=not args.quiet,
    )
    atomic_write_text(out, json.dumps(result.to_json(), indent=1))
    summary = result.summary()
    print(
        f"{result.algo} on {result.env} ({result.schedule}): {summary['states']} states, {result.candidates} random "
        f"candidates over H = {result.horizon}, scored by the model and by the simulator"
    )
    for name in MEASURES:
        print(f"  {name:10s} {summary[name]['mean']:10.3f} +- {summary[name]['ci95']:.3f}")
    print(f"saved {out}")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    from learn2adapt.envs import describe_all
    from learn2adapt.envs.catalog import describe_env

    if args.env or args.preset or args.set:  # one environment, as a run with these options sees it
        from learn2adapt.run.config import apply_overrides, preset_config

        # Not validated as a run (a reward is not needed to list tasks); make_env checks the task space.
        cfg = apply_overrides(preset_config(_env_of(args), args.preset or DEFAULT_PRESET, None), args.set or [])
        described = [describe_env(cfg.env, cfg.task_space)]
    else:
        described = describe_all()
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


def _envs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default=None, help="describe this environment only (any Gymnasium id)")
    p.add_argument("--preset", default=None, help="a preset name or FILE.toml[:NAME] whose task space to use")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. task_space=mass:torso=0.5/1.5")
    p.set_defaults(algo=None, seed=None)


def cmd_options(args: argparse.Namespace) -> int:
    from learn2adapt.run.config import describe_options

    cfg = _resolve_config(args)
    width = max(len(k) for k, _, _ in describe_options(cfg))
    print(
        f"options for --env {cfg.env} --preset {args.preset or DEFAULT_PRESET} --algo {cfg.algo} (override with --set key=value):"
    )
    for key, value, help_text in describe_options(cfg):
        print(f"  {key:{width}s}  {value:>18s}  {help_text}")
    return 0


#: Benchmark modules run by ``learn2adapt bench``, in order; each has ``run(device=...) -> dict``.
BENCHMARKS = ("planning", "adaptation", "rebal", "paper_run", "pets", "controller")
#: Benchmark modules run only when ``--only`` names them (slower, or not about learning speed).
OPTIONAL_BENCHMARKS = ("envs", "capture")


def _flatten(figures: dict[str, object]) -> dict[str, object]:
    """Rows of per-planner figures become ``<planner>_<precision>_<figure>`` keys."""
    out: dict[str, object] = {}
    for key, value in figures.items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and "planner" in value[0]:
            for row in value:
                prefix = f"{row['planner']}_{row.get('precision', 'fp32')}"
                out.update({f"{prefix}_{k}": v for k, v in row.items() if k not in ("planner", "precision")})
        else:
            out[key] = value
    return out


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    import torch

    from learn2adapt.benchmarks.timing import cpu_model, matmul_gflops
    from learn2adapt.errors import UnknownName
    from learn2adapt.run.config import check_device

    torch.set_num_threads(args.threads or usable_cpus())
    selected = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in selected if n not in BENCHMARKS + OPTIONAL_BENCHMARKS]
    if unknown:
        raise UnknownName(f"unknown benchmark {unknown[0]!r}; available: {', '.join(BENCHMARKS + OPTIONAL_BENCHMARKS)}")
    check_device(args.device)
    device = args.device
    overrides = args.set or []
    if overrides:
        if "paper_run" not in selected:
            raise ConfigError("--set changes the projected paper run only: add paper_run to --only")
        from learn2adapt.benchmarks.paper_run import paper_config

        paper_config(overrides, device)  # a bad option fails here, before anything is measured
    card = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu_model()
    figures: dict[str, object] = {
        "device": device,
        "processor": card,
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "matmul_gflops": round(matmul_gflops(device=device), 1),
        "matmul_gflops_bf16": round(matmul_gflops(dtype=torch.bfloat16, device=device), 1),
    }
    print(
        f"{card} ({device}): fp32 matmul {figures['matmul_gflops']} GFLOP/s, bf16 {figures['matmul_gflops_bf16']} GFLOP/s"
        f"; CPU {figures['cpu']}, {figures['threads']} threads"
    )
    if device == "cpu":
        from learn2adapt.benchmarks.timing import linear_gflops

        figures["linear_gflops"] = round(linear_gflops(), 1)
        figures["linear_gflops_bf16"] = round(linear_gflops(dtype=torch.bfloat16), 1)
        print(
            f"  the same products as the models' linear layers without gradients: fp32 {figures['linear_gflops']}"
            f" GFLOP/s, bf16 {figures['linear_gflops_bf16']} GFLOP/s"
        )
    for name in selected:
        module = importlib.import_module(f"learn2adapt.benchmarks.{name}")
        print(f"--- {name}", flush=True)
        kwargs = {"overrides": overrides} if name == "paper_run" else {}
        for key, value in _flatten(module.run(device=device, **kwargs)).items():
            figures[key] = value
            print(f"  {key:48s} {value:.4g}" if isinstance(value, float) else f"  {key:48s} {value}")
    if args.run:
        from learn2adapt.benchmarks.planning import bf16_agreement_on_run

        agreement = bf16_agreement_on_run(args.run)
        figures["bf16_agreement_trained"] = agreement
        print(f"--- bf16 vs fp32 candidate ranking with the trained model of {args.run}")
        for key in ("spearman", "same_action", "top10_overlap", "max_abs_return_diff"):
            print(f"  {key:48s} {agreement[key]}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"saved {args.json}")
    return 0


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


def _step_counts(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--at-steps {text!r}: expected comma-separated step counts, e.g. 12000,24000") from None


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


def _runner(args: argparse.Namespace):
    """The runner the ``--runner`` options ask for (compare, sweep)."""
    from learn2adapt.experiments.runner import make_runner

    return make_runner(_workers(args.workers), args.runner, args.ray_address, args.cpus_per_job, args.max_retries)


def cmd_compare(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.compare import compare

    algos = _algos(args.algos)
    seeds = _seeds(args.seeds)
    with _runner(args) as runner:
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
            at_steps=_step_counts(args.at_steps),
        )
    _print_verdict(report)
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from learn2adapt.reporting.claims import write_claims

    path = write_claims([Path(p) for p in args.comparisons], Path(args.out))
    print(f"claims: {path}")
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from learn2adapt.reporting.aggregate import aggregate

    path = aggregate([Path(p) for p in args.comparisons], args.schedule, Path(args.out) if args.out else None)
    print(f"aggregate: {path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from learn2adapt.envs import short_name
    from learn2adapt.experiments.sweep import parse_grid, sweep

    grid = parse_grid(args.grid or [])
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{short_name(args.env)}-{args.algo}"
    with _runner(args) as runner:
        report = sweep(
            args.env,
            args.preset,
            args.algo,
            grid,
            _seeds(args.seeds),
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


def _print_verdict(report: Path) -> None:
    summary = json.loads((report.parent / "summary.json").read_text())
    print("\n".join(line.replace("**", "") for line in summary.get("verdict", [])))
    print(f"report: {report}")


def cmd_demo(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.compare import compare
    from learn2adapt.experiments.runner import make_runner

    t0 = time.time()
    workers = _workers(args.workers if args.workers is not None else min(2, usable_cpus()))
    out = Path(args.out) if args.out else Path("runs") / "demo"
    print(
        f"learn2adapt demo: GrBAL vs MB on {DEMO_ENV} (preset {DEMO_PRESET}), {args.seeds} seed(s), held-out "
        f"tasks with a mid-episode switch; about 5-10 minutes on 2 cores. Output: {out}",
        flush=True,
    )
    with make_runner(workers) as runner:
        report = compare(
            DEMO_ENV,
            DEMO_PRESET,
            DEMO_ALGOS,
            _seeds(args.seeds),
            out,
            runner,
            progress=not args.quiet,
            title="learn2adapt demo: GrBAL vs MB under changing dynamics",
        )
    _print_verdict(report)
    print(f"demo finished in {time.time() - t0:.0f} s")
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from learn2adapt.errors import ConfigError
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


def _config_args(p: argparse.ArgumentParser) -> None:
    from learn2adapt.adaptation import ALGORITHMS
    from learn2adapt.run.config import describe_presets  # the names in learn2adapt/presets/

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


def _train_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--run-dir", default=None, help="output directory (default: runs/<env>-<algo>-s<seed>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue a killed run from its last checkpoint")
    _restamp_arg(p)
    p.add_argument(
        "--offline",
        metavar="PATH",
        default=None,
        help="train from a recording (learn2adapt record) or a local Minari dataset's directory instead of "
        "iteration 0's random episodes; with "
        "--set iterations=0 no environment is stepped (--env defaults to the one it was recorded on)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _record_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--out", required=True, help="the recording to write (.npz; format: learn2adapt.data.recorded)")
    p.add_argument("--episodes", type=int, default=10, help="episodes to record (default 10)")
    p.add_argument(
        "--policy", default="random", help="random (uniform actions) or a run directory whose controller acts"
    )
    p.add_argument("--split", default="train", help="train | test: where each episode's task is drawn from")
    p.add_argument("--schedule", default="fixed", help="task schedule within episodes (default fixed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_record(args: argparse.Namespace) -> int:
    from learn2adapt.experiments.runs import load_any
    from learn2adapt.run.config import check_schedule
    from learn2adapt.run.loop import RunState
    from learn2adapt.run.record import record
    from learn2adapt.run.run_dir import check_writable

    run = None
    if args.policy != "random":
        given = [f"--{k}" for k in ("env", "algo", "preset", "set") if getattr(args, k) is not None]
        if given:
            raise ConfigError(
                f"{given[0]} cannot be combined with --policy RUN_DIR: the run's own configuration is used"
            )
        loaded = load_any(Path(args.policy))
        if not isinstance(loaded, RunState):
            raise ConfigError(
                f"--policy {args.policy}: a {loaded.cfg.algo} run has no model-based controller to record"
            )
        run, cfg = loaded, loaded.cfg
    else:
        cfg = _resolve_config(args)
    check_schedule(args.schedule)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_writable(out.parent)
    seed = cfg.seed if args.seed is None else args.seed
    rec = record(cfg, args.episodes, out, run, args.split, args.schedule, seed, progress=not args.quiet)
    print(f"recorded {rec.num_episodes} episodes, {len(rec.obs)} transitions of {cfg.env} ({rec.policy}) to {out}")
    return 0


def _restamp_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--restamp-checkpoint",
        action="store_true",
        help="accept, once, a checkpoint that has no checksum (written before checkpoints were stamped) "
        "and write it again with one; a checkpoint whose checksum does not match is never accepted",
    )


def _restamp_if_asked(args: argparse.Namespace, run_dir: Path) -> None:
    from learn2adapt.run.checkpoint import CHECKPOINT_NAME, restamp_checkpoint

    if getattr(args, "restamp_checkpoint", False) and restamp_checkpoint(run_dir / CHECKPOINT_NAME):
        print(f"re-stamped {run_dir / CHECKPOINT_NAME} with a checksum", flush=True)


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory written by `learn2adapt train`")
    _restamp_arg(p)
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
    _test_time_args(p)


def _test_time_args(p: argparse.ArgumentParser) -> None:
    """``--set`` of test-time options and ``--quiet``: the options of a command that re-runs a trained run."""
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change a test-time option of the run, e.g. planner.particles=20 "
        "(planner.*, adaptation.mixture.*, adaptation.guard, eval.*; repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", default=None, metavar="FILE", help="also save the figures as JSON")
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)} (default: all of them); "
        f"also accepts, run only when named: {', '.join(OPTIONAL_BENCHMARKS)} "
        "(environment step overhead vs Gymnasium, about 25 s)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: every CPU this process may use)")
    p.add_argument("--device", default="cpu", help="torch device to measure: cpu | cuda | cuda:N")
    p.add_argument(
        "--run",
        default=None,
        metavar="RUN_DIR",
        help="also check bf16 planning against fp32 with this run's trained model",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="project the paper run with a changed option, e.g. --set fit.max_steps=1500 (repeatable)",
    )


def _compare_args(p: argparse.ArgumentParser) -> None:
    from learn2adapt.adaptation import ALGORITHMS, PAPER_ALGORITHMS

    _job_args(p)
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


def _job_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that trains and evaluates many runs (compare, sweep)."""
    from learn2adapt.experiments.compare import STORAGES
    from learn2adapt.experiments.runner import RUNNERS
    from learn2adapt.run.config import describe_presets  # the names in learn2adapt/presets/

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


def _sweep_args(p: argparse.ArgumentParser) -> None:
    _job_args(p)
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


def _aggregate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("comparisons", nargs="+", help="output directories of `learn2adapt compare`, one per domain")
    p.add_argument("--schedule", default="fixed", help="evaluation schedule to aggregate (default fixed)")
    p.add_argument("--out", default=None, help="output directory (default: runs/aggregate)")


def _claims_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "comparisons", nargs="+", help="`learn2adapt compare` output directories or report directories, one per domain"
    )
    p.add_argument("--out", default="runs/claims", help="output directory of claims.md / claims.json")


def _oracle_args(p: argparse.ArgumentParser) -> None:
    from learn2adapt.adaptation import ALGORITHMS
    from learn2adapt.run.config import describe_presets  # the names in learn2adapt/presets/

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


def _diagnose_args(p: argparse.ArgumentParser) -> None:
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
    _test_time_args(p)


def _video_args(p: argparse.ArgumentParser) -> None:
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


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output directory (default: runs/demo)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per algorithm (3 = the protocol's minimum)")
    p.add_argument("--workers", type=int, default=None, help="runs in parallel (default: 2, or 1 on one core)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


Handler = Callable[[argparse.Namespace], int]
#: Every subcommand, in the order ``learn2adapt --help`` lists them: name -> (help, arguments, handler).
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {
    "train": ("train a model-based agent; writes a run directory", _train_args, cmd_train),
    "eval": ("evaluate a run on the environment's held-out test tasks", _eval_args, cmd_eval),
    "record": (
        "record episodes of an environment (random actions or a run's controller) for train --offline",
        _record_args,
        cmd_record,
    ),
    "compare": ("train and evaluate several algorithms x seeds, write a report", _compare_args, cmd_compare),
    "aggregate": (
        "IQM, median, mean with bootstrap CIs and performance profiles over several comparisons (rliable)",
        _aggregate_args,
        cmd_aggregate,
    ),
    "claims": (
        "check the paper's claims (GrBAL/ReBAL beat MB and MB+DE, adaptation cuts the error...) per domain",
        _claims_args,
        cmd_claims,
    ),
    "demo": ("train GrBAL and MB on a small problem, evaluate on held-out tasks, report", _demo_args, cmd_demo),
    "sweep": (
        "grid or random search over options: every point x seed trained and evaluated, a report",
        _sweep_args,
        cmd_sweep,
    ),
    "video": ("render an evaluation episode of a run to MP4 or GIF", _video_args, cmd_video),
    "oracle": (
        "evaluate MPC with the simulator as its model on the held-out tasks (the bound of a perfect model)",
        _oracle_args,
        cmd_oracle,
    ),
    "diagnose": (
        "score random candidates with a run's model and with the simulator at the states it visits (model exploitation)",
        _diagnose_args,
        cmd_diagnose,
    ),
    "envs": (
        "list environment families, their train/test tasks and schedules (or one environment's, with --env / --preset / --set task_space=...)",
        _envs_args,
        cmd_envs,
    ),
    "options": ("list every configuration option with its help and resolved value", _config_args, cmd_options),
    "bench": ("measure planning, adaptation and meta-training speed on this machine", _bench_args, cmd_bench),
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
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, before)


if __name__ == "__main__":
    sys.exit(main())
