"""The plots of a comparison report (matplotlib, Agg backend, imported on first use).

Each function draws from the run records or the per-schedule summaries of
:mod:`learn2adapt.reporting.records` and writes one PNG. :data:`REPORT_PLOTS` is the
registry of the report's plots (file name, caption, drawing function); :func:`write_plots`
writes those that apply and the report shows each under its caption, in that order: a new
plot is one entry there (CONTRIBUTING.md, "A new report plot"). Algorithms are named and
coloured as the algorithm registry (:mod:`learn2adapt.adaptation`) says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from learn2adapt.evaluation.statistics import Stat
from learn2adapt.reporting.variants import PLANNER_LABELS, color
from learn2adapt.reporting.variants import label as display

if TYPE_CHECKING:
    from learn2adapt.reporting.records import AlgoSummary, Budget, RunRecord

#: Written only when runs measured their held-out return during training (its own report section).
SAMPLE_EFFICIENCY_PLOT = "sample_efficiency.png"


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, imported on first use (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Lay out ``fig``, write it to ``path`` and free it."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def _schedule_panels(
    by_schedule: dict[str, list[AlgoSummary]], width: float, height: float
) -> tuple[Any, list[tuple[Any, str, list[AlgoSummary]]]]:
    """A figure with one ``width`` x ``height`` panel per schedule, and ``(panel, schedule,
    summaries)`` for every schedule that has summaries (the others' panels stay empty)."""
    fig, axes = pyplot().subplots(1, len(by_schedule), figsize=(width * len(by_schedule), height), squeeze=False)
    return fig, [(ax, schedule, sums) for ax, (schedule, sums) in zip(axes[0], by_schedule.items()) if sums]


def plot_learning_curves(records: Sequence[RunRecord], algos: Sequence[str], path: Path) -> None:
    """Training-episode return against environment steps (mean over seeds, min-max band)."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4.0))
    for algo in algos:
        runs = [r for r in records if r.algo == algo and r.metrics]
        if not runs:
            continue
        n = min(len(r.metrics) for r in runs)
        steps = np.mean([[float(row["env_steps"]) for row in r.metrics[:n]] for r in runs], axis=0)
        rets = np.asarray([[float(row["return_mean"]) for row in r.metrics[:n]] for r in runs])
        c = color(algo)
        ax.plot(steps, rets.mean(0), marker="o", ms=3, color=c, label=f"{display(algo)} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(steps, rets.min(0), rets.max(0), color=c, alpha=0.2, lw=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return of training episodes")
    ax.set_title("Learning curves (iteration 0: random actions; band: min-max over seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def _grouped_bars(ax, groups: list[str], series: list[tuple[str, list[Stat], str | None]], log: bool = False) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for j, (name, stats, c) in enumerate(series):
        means = [s.mean for s in stats]
        errs = np.asarray([s.ci95 if math.isfinite(s.ci95) else 0.0 for s in stats])
        # On a log axis a bar cannot reach 0: the lower whisker stops just above it.
        lower = np.minimum(errs, 0.95 * np.abs(np.asarray(means))) if log else errs
        ax.bar(
            x + (j - (len(series) - 1) / 2) * width,
            means,
            width,
            yerr=np.vstack([lower, errs]),
            capsize=3,
            label=name,
            color=c,
            alpha=0.85,
            log=log,
        )
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=7, rotation=20, ha="right")
    ax.grid(axis="y", alpha=0.3)


def plot_heldout_returns(by_schedule: dict[str, list[AlgoSummary]], path: Path) -> None:
    """Per-task and overall held-out returns with 95% CI bars, one panel per schedule."""
    fig, panels = _schedule_panels(by_schedule, 6.4, 4.2)
    for ax, schedule, sums in panels:
        groups = [label for label, _ in sums[0].per_task] + ["all test tasks"]
        series = [(display(s.algo), [st for _, st in s.per_task] + [s.return_stat], color(s.algo)) for s in sums]
        _grouped_bars(ax, groups, series)
        ax.set_ylabel("return (mean ± 95% CI)")
        ax.set_title(f"Held-out test tasks, schedule {schedule}", fontsize=9)
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_prediction_error(by_schedule: dict[str, list[AlgoSummary]], path: Path) -> None:
    """K-step prediction error before vs after adaptation, per algorithm and schedule."""
    fig, panels = _schedule_panels(by_schedule, 5.0, 4.0)
    for ax, schedule, sums in panels:
        groups = [display(s.algo) for s in sums]
        _grouped_bars(
            ax,
            groups,
            [
                ("before adaptation", [s.pred_before for s in sums], "0.6"),
                ("after adaptation", [s.pred_after for s in sums], "tab:blue"),
            ],
            log=True,
        )
        ax.set_ylabel("MSE of normalised state change (K future steps, log)")
        ax.set_title(f"Prediction error, held-out tasks, {schedule}", fontsize=8)
        ax.legend(fontsize=8)
    _save(fig, path)


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or y.size < width:
        return y
    kernel = np.ones(width) / width
    # Average over the available neighbours only, so the ends are not pulled towards 0.
    return np.convolve(y, kernel, mode="same") / np.convolve(np.ones_like(y), kernel, mode="same")


def plot_recovery(by_schedule: dict[str, list[AlgoSummary]], path: Path) -> bool:
    """Reward per step against steps since the dynamics switched (switching schedules only).

    Returns whether it drew: without a switching schedule there is nothing to plot, and a
    stale plot from an earlier report at ``path`` is removed.
    """
    switching = {k: v for k, v in by_schedule.items() if any(s.recovery_curve is not None for s in v)}
    if not switching:
        path.unlink(missing_ok=True)
        return False
    fig, axes = pyplot().subplots(1, len(switching), figsize=(6.4 * len(switching), 4.0), squeeze=False)
    for ax, (schedule, sums) in zip(axes[0], switching.items()):
        for s in sums:
            if s.recovery_curve is None:
                continue
            c = color(s.algo)
            y = _smooth(s.recovery_curve, 5)
            ax.plot(np.arange(y.size), y, color=c, label=f"{display(s.algo)}")
            if math.isfinite(s.pre_switch.mean):
                ax.axhline(s.pre_switch.mean, color=c, ls="--", lw=0.8, alpha=0.7)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("steps since the dynamics switched")
        ax.set_ylabel("reward per step (5-step moving average)")
        ax.set_title(f"Recovery, schedule {schedule} (dashed: level before the switch)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)
    return True


def plot_sample_efficiency(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Held-out return against environment steps (log axis), one line per algorithm."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4.0))
    for algo, (steps, values) in curves.items():
        ax.plot(steps, values, marker="o", ms=3, color=color(algo), label=display(algo))
    ax.set_xscale("log")
    ax.set_xlabel("environment steps (log)")
    ax.set_ylabel("held-out return (fixed, mean over seeds)")
    ax.set_title("Sample efficiency", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_returns_by_budget(
    table: Sequence[Budget], names: Sequence[str], ceilings: dict[str, float], schedule: str, path: Path
) -> None:
    """Held-out return (95% CI bars) against training environment steps, every entry on one axis;
    the oracle's return with each planner as a dashed line (``""``: the runs' own planner)."""
    fig, ax = pyplot().subplots(figsize=(6.8, 4.4))
    for n in names:
        points = [(b.actual_steps[n], b.summaries[n].return_stat) for b in table if n in b.summaries]
        if not points:
            continue
        xs, stats = [p[0] for p in points], [p[1] for p in points]
        ax.errorbar(xs, [s.mean for s in stats], yerr=[s.ci95 if math.isfinite(s.ci95) else 0 for s in stats],
                    marker="o", ms=4, capsize=3, color=color(n), label=display(n))  # fmt: skip
    for planner, value in ceilings.items():
        named = f"oracle ({PLANNER_LABELS.get(planner, planner)})" if planner else "oracle"
        ax.axhline(value, ls="--", lw=1, color="0.4" if planner in ("", "rs") else "0.1", label=named)
    ax.set_xlabel("training environment steps")
    ax.set_ylabel(f"held-out return ({schedule})")
    ax.set_title("Held-out return by training budget (mean ± 95% CI over seeds' episodes)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


@dataclass(frozen=True)
class ReportInputs:
    """What a report plot draws from."""

    records: Sequence[RunRecord]
    algos: Sequence[str]
    by_schedule: dict[str, list[AlgoSummary]]


@dataclass(frozen=True)
class ReportPlot:
    """One plot of the report: its file, the caption above it, and how to draw it.

    ``draw(inputs, path)`` writes the PNG and returns whether it did (a plot that does not apply,
    e.g. recovery without a switching schedule, returns False and is left out of the report).
    """

    file: str
    caption: str
    draw: Callable[[ReportInputs, Path], bool]


def _always(plot: Callable[[ReportInputs, Path], None]) -> Callable[[ReportInputs, Path], bool]:
    def draw(inputs: ReportInputs, path: Path) -> bool:
        plot(inputs, path)
        return True

    return draw


#: The report's plots, in the order it shows them.
REPORT_PLOTS: tuple[ReportPlot, ...] = (
    ReportPlot(
        "learning_curves.png",
        "Learning curves (training-task episodes against environment steps):",
        _always(lambda i, path: plot_learning_curves(i.records, i.algos, path)),
    ),
    ReportPlot(
        "heldout_returns.png",
        "Held-out test-task returns with 95% CI bars:",
        _always(lambda i, path: plot_heldout_returns(i.by_schedule, path)),
    ),
    ReportPlot(
        "prediction_error.png",
        "Prediction error on the K transitions after M past ones, before vs after adaptation "
        "(held-out-task data from the evaluation episodes):",
        _always(lambda i, path: plot_prediction_error(i.by_schedule, path)),
    ),
    ReportPlot(
        "recovery.png",
        "Recovery: reward per step against steps since a mid-episode dynamics switch:",
        lambda i, path: plot_recovery(i.by_schedule, path),
    ),
)
#: Their file names.
PLOTS: tuple[str, ...] = tuple(p.file for p in REPORT_PLOTS)


def write_plots(inputs: ReportInputs, out_dir: Path) -> list[ReportPlot]:
    """Draw every plot of :data:`REPORT_PLOTS` that applies into ``out_dir``; returns those drawn."""
    out_dir = Path(out_dir)
    return [plot for plot in REPORT_PLOTS if plot.draw(inputs, out_dir / plot.file)]
