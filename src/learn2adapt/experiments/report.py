"""The report of a comparison: a Markdown summary, plots, and machine-readable numbers.

Everything in the report is computed from the run directories (``metrics.csv``,
``eval.json``, ``config.json``): the tables, the plots, and the sentences that
say which method did better and by how much (difference of means with a Welch
95% confidence interval over training seeds). Nothing is hand-written.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from learn2adapt.experiments.evaluation import EvalResult, diff_ci95, load_protocol, mean_ci95, t975
from learn2adapt.training.metrics_log import MetricsLog

#: How algorithms are named in tables and plots.
DISPLAY = {"mb": "MB", "mbde": "MB+DE", "grbal": "GrBAL", "rebal": "ReBAL"}
#: Colours per algorithm, stable across plots.
COLORS = {"grbal": "tab:blue", "rebal": "tab:green", "mb": "tab:red", "mbde": "tab:orange"}
#: Steps after a switch over which the "early recovery" reward per step is averaged.
RECOVERY_WINDOW = 50
#: Plot files every report contains.
PLOTS = ("learning_curves.png", "heldout_returns.png", "prediction_error.png", "recovery.png")


def display(algo: str) -> str:
    return DISPLAY.get(algo, algo)


def task_label(task: dict[str, Any]) -> str:
    """A short label for a task dict, e.g. ``mass=0.3, length=1.7``."""
    parts = []
    for k, v in task.items():
        if isinstance(v, float):
            v = f"{v:.3g}"
        elif isinstance(v, (list, dict)):
            v = json.dumps(v, separators=(",", ":"))
        parts.append(f"{k}={v}")
    return ", ".join(parts) or "default"


@dataclass
class RunRecord:
    """What one finished and evaluated run directory holds."""

    algo: str
    seed: int
    run_dir: Path
    metrics: list[dict[str, Any]]
    evals: dict[str, EvalResult]
    train_wall_seconds: float
    env_steps: int

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        run_dir = Path(run_dir)
        cfg = json.loads((run_dir / "config.json").read_text())
        metrics = MetricsLog.read(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else []
        last = metrics[-1] if metrics else {}
        return cls(cfg["algo"], int(cfg["seed"]), run_dir, metrics, load_protocol(run_dir / "eval.json"),
                   float(last.get("wall_seconds", float("nan"))), int(last.get("env_steps", 0)))


@dataclass
class Stat:
    """A mean with its 95% CI half-width, and the samples it came from."""

    mean: float
    ci95: float
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Stat":
        samples = [float(s) for s in samples if s is not None and math.isfinite(s)]
        if not samples:
            return cls(float("nan"), float("nan"), [])
        m, h = mean_ci95(samples)
        return cls(m, h, samples)

    @classmethod
    def stratified(cls, groups: Sequence[Sequence[float]]) -> "Stat":
        """Mean over groups of the group means (e.g. over a fixed set of test tasks), with its 95% CI.

        The groups are fixed (not sampled), so only the within-group spread is
        uncertainty: se = sqrt(sum_j s_j^2 / n_j) / J, Welch-Satterthwaite degrees of freedom.
        """
        groups = [[float(x) for x in g if math.isfinite(x)] for g in groups]
        groups = [g for g in groups if g]
        if not groups:
            return cls(float("nan"), float("nan"), [])
        samples = [x for g in groups for x in g]
        mean = float(np.mean([np.mean(g) for g in groups]))
        if any(len(g) < 2 for g in groups):
            return cls(mean, float("nan"), samples)
        v = [np.var(g, ddof=1) / len(g) for g in groups]
        se = math.sqrt(sum(v)) / len(groups)
        if se == 0.0:
            return cls(mean, 0.0, samples)
        df = sum(v) ** 2 / sum(vj**2 / (len(g) - 1) for vj, g in zip(v, groups))
        return cls(mean, t975(df) * se, samples)

    def fmt(self, digits: int = 1) -> str:
        """``mean ± ci`` with ``digits`` decimals (negative: that many significant digits)."""
        if not math.isfinite(self.mean):
            return "n/a"
        ci = f"{self.ci95:.{abs(digits)}{'g' if digits < 0 else 'f'}}" if math.isfinite(self.ci95) else "n/a"
        return f"{self.mean:.{abs(digits)}{'g' if digits < 0 else 'f'}} ± {ci}"

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": self.ci95, "n": len(self.samples)}


def _fmt_g(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if math.isfinite(x) else "n/a"


# --- aggregation over seeds ---------------------------------------------------------------
@dataclass
class AlgoSummary:
    """One algorithm under one schedule, aggregated over training seeds."""

    algo: str
    seeds: list[int]
    #: Mean return over the test tasks, CI over every episode of every seed (stratified by task).
    ret: Stat
    #: Mean return over all test tasks of each seed.
    seed_means: list[float]
    #: Per test task, over every episode of every seed.
    per_task: list[tuple[str, Stat]]
    #: Return of every episode by (seed, task index, episode index): the same key means the same
    #: initial state and schedule for every algorithm, so differences can be paired.
    episodes: dict[tuple[int, int, int], float]
    pred_before: Stat
    pred_after: Stat
    #: Reward per step in the first :data:`RECOVERY_WINDOW` steps after a switch, per seed.
    early_recovery: Stat
    pre_switch: Stat
    recovery_curve: Optional[np.ndarray]
    env_steps: Stat
    train_wall: Stat
    eval_wall: Stat

    @property
    def return_stat(self) -> Stat:
        return self.ret


def summarize(algo: str, records: Sequence[RunRecord], schedule: str) -> Optional[AlgoSummary]:
    runs = [r for r in records if r.algo == algo and schedule in r.evals]
    if not runs:
        return None
    evals = [r.evals[schedule] for r in runs]
    labels = [task_label(t.task) for t in evals[0].tasks]
    per_task = []
    for i, label in enumerate(labels):
        per_task.append((label, Stat.of([x for e in evals if i < len(e.tasks) for x in e.tasks[i].returns])))
    curves, early, pre = [], [], []
    for e in evals:
        if e.recovery is not None and e.recovery.reward:
            curve = np.asarray(e.recovery.reward, np.float64)
            curves.append(curve)
            early.append(float(curve[:RECOVERY_WINDOW].mean()))
            pre.append(e.recovery.pre_switch_reward)
    curve = None
    if curves:
        n = min(len(c) for c in curves)
        curve = np.mean([c[:n] for c in curves], axis=0)
    return AlgoSummary(
        algo=algo,
        seeds=[r.seed for r in runs],
        ret=Stat.stratified([st.samples for _, st in per_task]),
        seed_means=[float(np.mean([t.mean for t in e.tasks])) for e in evals],
        per_task=per_task,
        episodes={(r.seed, i, k): x for r, e in zip(runs, evals) for i, t in enumerate(e.tasks)
                  for k, x in enumerate(t.returns)},
        pred_before=Stat.of([e.pred_error[0] for e in evals]),
        pred_after=Stat.of([e.pred_error[1] for e in evals]),
        early_recovery=Stat.of(early),
        pre_switch=Stat.of(pre),
        recovery_curve=curve,
        env_steps=Stat.of([r.env_steps for r in runs]),
        train_wall=Stat.of([r.train_wall_seconds for r in runs]),
        eval_wall=Stat.of([e.eval_wall_seconds for e in evals]),
    )


# --- computed verdicts --------------------------------------------------------------------
def relative_change(diff: float, ref: float) -> str:
    """``diff`` as a percentage of ``|ref|``, unless ``ref`` is near 0 next to ``diff``.

    Returns straddle 0, so a baseline of 0.6 would turn a difference of 77 into
    "+13000%": beyond 10x the baseline, no percentage is given.
    """
    if not (math.isfinite(ref) and math.isfinite(diff)):
        return "n/a"
    if ref == 0 or abs(diff) > 10 * abs(ref):
        return "baseline near 0, no percentage"
    return f"{100 * diff / abs(ref):+.0f}%"


def paired_diff_ci95(a: dict[Any, float], b: dict[Any, float]) -> tuple[float, float, int]:
    """Mean of ``a[k] - b[k]`` over shared keys, its 95% CI half-width, and the number of pairs."""
    keys = sorted(set(a) & set(b))
    d = [a[k] - b[k] for k in keys]
    if not d:
        return float("nan"), float("nan"), 0
    m, h = mean_ci95(d)
    return m, (h if len(d) >= 2 else float("nan")), len(d)


def compare_sentence(best: AlgoSummary, other: AlgoSummary, what: str,
                     a: Optional[Sequence[float]] = None, b: Optional[Sequence[float]] = None) -> str:
    """"X beat Y by D (P%; 95% CI of the difference ±h): significant / within noise."

    Returns are compared episode by episode (paired: same seed, task and episode index,
    hence the same initial state and schedule); other quantities (``a``, ``b``) by Welch.
    """
    if a is None or b is None:
        d, h, n = paired_diff_ci95(best.episodes, other.episodes)
        ref = float(np.mean([other.episodes[k] for k in best.episodes if k in other.episodes])) if n else float("nan")
        basis = f"paired over {n} episodes"
    else:
        d, h = diff_ci95(a, b)
        ref = float(np.mean(b)) if len(b) else float("nan")
        basis = f"Welch, {len(a)} vs {len(b)} seeds"
    verb = "beat" if d > 0 else ("tied with" if d == 0 else "trailed")
    if not math.isfinite(h):
        verdict = "too few samples for a confidence interval"
    elif abs(d) > h:
        verdict = "the 95% CI of the difference excludes 0"
    else:
        verdict = "the 95% CI of the difference includes 0, so this is within noise"
    return (f"{display(best.algo)} {verb} {display(other.algo)} on {what} by {d:+.4g} ({relative_change(d, ref)}; "
            f"95% CI of the difference ±{_fmt_g(h)}, {basis}): {verdict}.")


def verdicts(summaries: list[AlgoSummary], schedule: str) -> list[str]:
    """Sentences saying which method did best under ``schedule``, and by how much."""
    if not summaries:
        return []
    out = []
    ranked = sorted(summaries, key=lambda s: s.return_stat.mean, reverse=True)
    best = ranked[0]
    out.append(f"**Held-out return, schedule `{schedule}`:** best is **{display(best.algo)}** "
               f"({best.return_stat.fmt()}, mean over test tasks ± 95% CI over {len(best.ret.samples)} episodes "
               f"from {len(best.seeds)} seeds).")
    for other in ranked[1:]:
        out.append("- " + compare_sentence(best, other, "held-out return"))
    adaptive = [s for s in summaries if math.isfinite(s.pred_after.mean) and math.isfinite(s.pred_before.mean)]
    if adaptive:
        lowest = min(adaptive, key=lambda s: s.pred_after.mean)
        parts = []
        for s in adaptive:
            if s.pred_before.samples == s.pred_after.samples:
                parts.append(f"{display(s.algo)} {_fmt_g(s.pred_before.mean)} (does not adapt)")
                continue
            cut = 1 - s.pred_after.mean / s.pred_before.mean if s.pred_before.mean > 0 else float("nan")
            parts.append(f"{display(s.algo)} {_fmt_g(s.pred_before.mean)} → {_fmt_g(s.pred_after.mean)} "
                         f"({'-' if cut >= 0 else '+'}{abs(100 * cut):.0f}%)")
        out.append(f"- Prediction error on held-out-task data, before → after adaptation: {'; '.join(parts)}. "
                   f"Lowest after adaptation: {display(lowest.algo)}.")
    recov = [s for s in summaries if s.early_recovery.samples]
    if recov:
        ranked_r = sorted(recov, key=lambda s: s.early_recovery.mean, reverse=True)
        parts = [f"{display(s.algo)} {_fmt_g(s.early_recovery.mean, 4)} (before the switch {_fmt_g(s.pre_switch.mean, 4)})"
                 for s in ranked_r]
        out.append(f"- Reward per step in the first {RECOVERY_WINDOW} steps after a dynamics switch: {'; '.join(parts)}.")
        if len(ranked_r) > 1 and len(ranked_r[0].early_recovery.samples) >= 2:
            out.append("  - " + compare_sentence(ranked_r[0], ranked_r[1], "early post-switch reward per step",
                                                 a=ranked_r[0].early_recovery.samples, b=ranked_r[1].early_recovery.samples))
    return out


# --- plots --------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(records: Sequence[RunRecord], algos: Sequence[str], path: Path) -> None:
    """Training-episode return against environment steps (mean over seeds, min-max band)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for algo in algos:
        runs = [r for r in records if r.algo == algo and r.metrics]
        if not runs:
            continue
        n = min(len(r.metrics) for r in runs)
        steps = np.mean([[float(row["env_steps"]) for row in r.metrics[:n]] for r in runs], axis=0)
        rets = np.asarray([[float(row["return_mean"]) for row in r.metrics[:n]] for r in runs])
        color = COLORS.get(algo)
        ax.plot(steps, rets.mean(0), marker="o", ms=3, color=color, label=f"{display(algo)} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(steps, rets.min(0), rets.max(0), color=color, alpha=0.2, lw=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return of training episodes")
    ax.set_title("Learning curves (iteration 0: random actions; band: min-max over seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _grouped_bars(ax, groups: list[str], series: list[tuple[str, list[Stat], Optional[str]]], log: bool = False) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for j, (name, stats, color) in enumerate(series):
        means = [s.mean for s in stats]
        errs = np.asarray([s.ci95 if math.isfinite(s.ci95) else 0.0 for s in stats])
        # On a log axis a bar cannot reach 0: the lower whisker stops just above it.
        lower = np.minimum(errs, 0.95 * np.abs(np.asarray(means))) if log else errs
        ax.bar(x + (j - (len(series) - 1) / 2) * width, means, width, yerr=np.vstack([lower, errs]), capsize=3,
               label=name, color=color, alpha=0.85, log=log)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=7, rotation=20, ha="right")
    ax.grid(axis="y", alpha=0.3)


def plot_heldout_returns(by_schedule: dict[str, list[AlgoSummary]], path: Path) -> None:
    """Per-task and overall held-out returns with 95% CI bars, one panel per schedule."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(by_schedule), figsize=(6.4 * len(by_schedule), 4.2), squeeze=False)
    for ax, (schedule, sums) in zip(axes[0], by_schedule.items()):
        if not sums:
            continue
        groups = [label for label, _ in sums[0].per_task] + ["all test tasks"]
        series = [(display(s.algo), [st for _, st in s.per_task] + [s.return_stat], COLORS.get(s.algo)) for s in sums]
        _grouped_bars(ax, groups, series)
        ax.set_ylabel("return (mean ± 95% CI)")
        ax.set_title(f"Held-out test tasks, schedule {schedule}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_prediction_error(by_schedule: dict[str, list[AlgoSummary]], path: Path) -> None:
    """K-step prediction error before vs after adaptation, per algorithm and schedule."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(by_schedule), figsize=(5.0 * len(by_schedule), 4.0), squeeze=False)
    for ax, (schedule, sums) in zip(axes[0], by_schedule.items()):
        if not sums:
            continue
        groups = [display(s.algo) for s in sums]
        _grouped_bars(ax, groups, [("before adaptation", [s.pred_before for s in sums], "0.6"),
                                   ("after adaptation", [s.pred_after for s in sums], "tab:blue")], log=True)
        ax.set_ylabel("MSE of normalised state change (K future steps, log)")
        ax.set_title(f"Prediction error, held-out tasks, {schedule}", fontsize=8)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or y.size < width:
        return y
    kernel = np.ones(width) / width
    # Average over the available neighbours only, so the ends are not pulled towards 0.
    return np.convolve(y, kernel, mode="same") / np.convolve(np.ones_like(y), kernel, mode="same")


def plot_recovery(by_schedule: dict[str, list[AlgoSummary]], path: Path) -> None:
    """Reward per step against steps since the dynamics switched (switching schedules only)."""
    plt = _plt()
    switching = {k: v for k, v in by_schedule.items() if any(s.recovery_curve is not None for s in v)}
    fig, axes = plt.subplots(1, max(1, len(switching)), figsize=(6.4 * max(1, len(switching)), 4.0), squeeze=False)
    if not switching:
        axes[0][0].text(0.5, 0.5, "no evaluated schedule switched the dynamics mid-episode",
                        ha="center", va="center", fontsize=10)
        axes[0][0].set_axis_off()
    for ax, (schedule, sums) in zip(axes[0], switching.items()):
        for s in sums:
            if s.recovery_curve is None:
                continue
            color = COLORS.get(s.algo)
            y = _smooth(s.recovery_curve, 5)
            ax.plot(np.arange(y.size), y, color=color, label=f"{display(s.algo)}")
            if math.isfinite(s.pre_switch.mean):
                ax.axhline(s.pre_switch.mean, color=color, ls="--", lw=0.8, alpha=0.7)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("steps since the dynamics switched")
        ax.set_ylabel("reward per step (5-step moving average)")
        ax.set_title(f"Recovery, schedule {schedule} (dashed: level before the switch)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the report ---------------------------------------------------------------------------
def write_report(records: Sequence[RunRecord], out_dir: Path, title: str, algos: Sequence[str],
                 schedules: Sequence[str], notes: Sequence[str] = ()) -> Path:
    """Write ``report.md``, the plots and ``summary.json`` to ``out_dir``; returns report.md's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_schedule: dict[str, list[AlgoSummary]] = {}
    for schedule in schedules:
        by_schedule[schedule] = [s for s in (summarize(a, records, schedule) for a in algos) if s is not None]

    plot_learning_curves(records, algos, out_dir / "learning_curves.png")
    plot_heldout_returns(by_schedule, out_dir / "heldout_returns.png")
    plot_prediction_error(by_schedule, out_dir / "prediction_error.png")
    plot_recovery(by_schedule, out_dir / "recovery.png")

    lines = [f"# {title}", "", f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {len(records)} run directories. "
             "Every number and sentence below is computed from them.", ""]
    lines += ["## Verdict", ""]
    for schedule, sums in by_schedule.items():
        lines += verdicts(sums, schedule) + [""]

    for schedule, sums in by_schedule.items():
        if not sums:
            continue
        lines += [f"## Held-out returns, schedule `{schedule}`", ""]
        task_labels = [label for label, _ in sums[0].per_task]
        header = ["algorithm", "seeds", "return (all test tasks)", "per-seed means"] + [f"`{t}`" for t in task_labels]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for s in sums:
            row = ([display(s.algo), str(len(s.seeds)), s.return_stat.fmt(), ", ".join(f"{m:.1f}" for m in s.seed_means)]
                   + [st.fmt() for _, st in s.per_task])
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "Mean ± 95% CI over every episode of every seed (all-tasks column: the mean of the task means, "
                  "CI stratified by task).", ""]
        lines += ["| algorithm | pred. error before adaptation | after | early post-switch reward/step | "
                  "pre-switch reward/step | env steps (training) | training wall-clock (s) | eval wall-clock (s) |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in sums:
            lines.append(f"| {display(s.algo)} | {s.pred_before.fmt(-3)} | {s.pred_after.fmt(-3)} | "
                         f"{s.early_recovery.fmt(-3)} | {s.pre_switch.fmt(-3)} | {s.env_steps.mean:.0f} | "
                         f"{s.train_wall.mean:.0f} | {s.eval_wall.mean:.0f} |")
        lines.append("")

    lines += ["## Plots", "",
              "Learning curves (training-task episodes against environment steps):", "", "![](learning_curves.png)", "",
              "Held-out test-task returns with 95% CI bars:", "", "![](heldout_returns.png)", "",
              "Prediction error on the K transitions after M past ones, before vs after adaptation "
              "(held-out-task data from the evaluation episodes):", "", "![](prediction_error.png)", "",
              "Recovery: reward per step against steps since a mid-episode dynamics switch:", "", "![](recovery.png)", ""]
    lines += ["## Protocol", ""] + [f"- {n}" for n in notes] + [
        f"- Schedules evaluated: {', '.join(f'`{s}`' for s in schedules)}; held-out (test-split) tasks only.",
        "- Runs: " + ", ".join(f"`{r.run_dir.name}`" for r in records) + ".", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))

    summary = {schedule: {s.algo: {
        "seeds": s.seeds, "return": s.return_stat.to_json(), "seed_means": s.seed_means,
        "per_task": {label: st.to_json() for label, st in s.per_task},
        "pred_error_before": s.pred_before.to_json(), "pred_error_after": s.pred_after.to_json(),
        "early_recovery": s.early_recovery.to_json(), "pre_switch": s.pre_switch.to_json(),
        "env_steps": s.env_steps.mean, "train_wall_seconds": s.train_wall.mean, "eval_wall_seconds": s.eval_wall.mean,
    } for s in sums} for schedule, sums in by_schedule.items()}
    summary["verdict"] = [v for schedule, sums in by_schedule.items() for v in verdicts(sums, schedule)]
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return report
