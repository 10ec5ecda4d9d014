"""Sensitivity studies: a grid or random search over options, every point x seed a job.

``learn2adapt sweep --grid adaptation.inner_lr=0.001,0.01 --grid adaptation.past=8,16`` trains
and evaluates one run per (point, seed) on any runner, reusing the comparison machinery
(idempotent and resumable: a re-run reuses finished runs and resumes the others), and writes
``OUT/report/sweep.md`` and ``sweep.json`` (held-out return and prediction error per point,
mean ± 95% CI over seeds, the best point) with one plot per swept option.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from learn2adapt.envs import short_name
from learn2adapt.errors import ConfigError
from learn2adapt.evaluation.statistics import Stat
from learn2adapt.experiments.execution import run_jobs
from learn2adapt.experiments.jobs import Job, resolve_configs
from learn2adapt.experiments.runner import Runner, make_runner
from learn2adapt.reporting.plots import pyplot
from learn2adapt.reporting.variants import Entry
from learn2adapt.run.config import check_schedule
from learn2adapt.run.options import to_dict
from learn2adapt.run.run_dir import RunLock, atomic_write_text, check_writable


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["key=v1,v2", ...]`` -> ``{key: [v1, v2]}`` (values checked when the configs are built)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, eq, values = item.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not key.strip() or not choices:
            raise ConfigError(
                f"--grid {item!r} must be KEY=VALUE1,VALUE2,... e.g. --grid adaptation.inner_lr=0.001,0.01"
            )
        if key.strip() in grid:
            raise ConfigError(f"--grid {key.strip()} given twice")
        grid[key.strip()] = choices
    if not grid:
        raise ConfigError("sweep needs at least one --grid KEY=VALUE1,VALUE2,...")
    return grid


def grid_points(grid: dict[str, list[str]], samples: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """Every combination, or ``samples`` of them drawn at random without replacement (random search)."""
    keys = list(grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    if samples is not None:
        if samples < 1:
            raise ConfigError("--samples must be >= 1")
        pick = np.random.default_rng(seed).choice(len(points), size=min(samples, len(points)), replace=False)
        points = [points[i] for i in sorted(pick)]
    return points


def default_sweep_dir(env: str, algo: str) -> Path:
    """``runs/sweep-<env>-<algo>``: where ``learn2adapt sweep`` writes when not given ``--out``."""
    return Path("runs") / f"sweep-{short_name(env)}-{algo}"


def sweep(
    env: str,
    preset: str,
    algo: str,
    grid: dict[str, list[str]],
    seeds: Sequence[int],
    out: Path,
    runner: Runner | None = None,
    overrides: Sequence[str] = (),
    samples: int | None = None,
    schedule: str = "fixed",
    eval_episodes: int | None = None,
    progress: bool = True,
    storage: str = "shared",
) -> Path:
    """Train and evaluate ``algo`` at every point of ``grid`` x ``seeds``; returns ``report/sweep.md``."""
    t0 = time.time()
    check_schedule(schedule)
    points = grid_points(grid, samples)
    configs = [
        resolve_configs(env, preset, [Entry(algo, algo)], seeds, [*overrides, *point_overrides(p)]) for p in points
    ]
    out = Path(out)
    with RunLock(out, what="sweep"):
        check_writable(out)
        jobs = [
            Job(to_dict(cfg), str(out / "runs" / f"p{i:03d}-s{cfg.seed}"), [schedule], eval_episodes, progress)
            for i, cfgs in enumerate(configs)
            for cfg in cfgs
        ]
        runner = runner or make_runner(1)
        if progress:
            print(
                f"sweep: {len(points)} points x {len(seeds)} seeds = {len(jobs)} runs of {algo} on {env}, "
                f"{runner.workers} worker(s); output in {out}",
                flush=True,
            )
        run_jobs(jobs, runner, progress, storage)
        rows = [
            _point_row(i, p, [Path(j.run_dir) for j in jobs[i * len(seeds) : (i + 1) * len(seeds)]], schedule)
            for i, p in enumerate(points)
        ]
        return _write(out / "report", env, preset, algo, grid, rows, schedule, seeds, time.time() - t0)


def point_overrides(point: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in point.items()]


def _point_row(index: int, point: dict[str, str], run_dirs: list[Path], schedule: str) -> dict[str, Any]:
    returns, errors = [], []
    for run_dir in run_dirs:
        data = json.loads((run_dir / "eval.json").read_text())
        result = data.get("schedules", {}).get(schedule, data)
        returns.append(float(result["mean"]))
        errors.append(float(result.get("pred_error_after", float("nan"))))
    return {"point": index, "options": point, "return": Stat.of(returns), "pred_error_after": Stat.of(errors)}


def _write(
    report_dir: Path,
    env: str,
    preset: str,
    algo: str,
    grid: dict[str, list[str]],
    rows: list[dict[str, Any]],
    schedule: str,
    seeds: Sequence[int],
    seconds: float,
) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    best = max(rows, key=lambda r: r["return"].mean if math.isfinite(r["return"].mean) else -math.inf)
    keys = list(grid)
    lines = [
        f"# Sweep: {algo} on {env} (preset `{preset}`)",
        "",
        f"Held-out return under `{schedule}` and prediction error after adaptation, mean ± 95% CI over seeds "
        f"{list(seeds)}; {len(rows)} points, {seconds:.0f} s wall-clock.",
        "",
        f"**Best point:** {', '.join(f'`{k}={v}`' for k, v in best['options'].items())}: return "
        f"{best['return'].fmt(1)}.",
        "",
        "| point | " + " | ".join(keys) + " | held-out return | pred. error after |",
        "|---|" + "---|" * len(keys) + "---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['point']} | "
            + " | ".join(r["options"][k] for k in keys)
            + f" | {r['return'].fmt(1)} | {r['pred_error_after'].fmt(-3)} |"
        )
    plots = []
    plt = pyplot()
    for key in keys:
        values = sorted({r["options"][key] for r in rows}, key=_as_number)
        means = [Stat.of([x for r in rows if r["options"][key] == v for x in r["return"].samples]) for v in values]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar(range(len(values)), [m.mean for m in means], yerr=[m.ci95 for m in means], marker="o", capsize=4)
        ax.set_xticks(range(len(values)), values)
        ax.set(xlabel=key, ylabel=f"held-out return ({schedule})", title=f"{algo}: return vs {key}")
        fig.tight_layout()
        name = f"sweep_{key.replace('.', '_')}.png"
        fig.savefig(report_dir / name, dpi=110)
        plt.close(fig)
        plots.append(name)
    lines += ["", "Each plot averages the points that share the option's value (over the other options and seeds).", ""]
    lines += [f"![]({name})" for name in plots]
    report = report_dir / "sweep.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    summary = {
        "env": env, "preset": preset, "algo": algo, "grid": grid, "schedule": schedule, "seeds": list(seeds),
        "best": {"options": best["options"], "return": best["return"].to_json()},
        "points": [{"options": r["options"], "return": r["return"].to_json(),
                    "pred_error_after": r["pred_error_after"].to_json()} for r in rows],
    }  # fmt: skip
    atomic_write_text(report_dir / "sweep.json", json.dumps(summary, indent=2) + "\n")
    return report


def _as_number(text: str) -> tuple[int, float | str]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)
