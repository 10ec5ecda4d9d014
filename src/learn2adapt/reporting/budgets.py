"""Held-out return by training budget: every run evaluated at given environment-step counts.

``compare --at-steps 12000,24000,36000,48000`` evaluates each run, while it trains, at the first
checkpoint (model-based: iteration; model-free: ``baseline.checkpoint_every``) whose environment
steps reach each count, with the full evaluation protocol (every schedule, every
``--eval-planners`` planner), into ``RUN/steps/<count>/``. This module turns those evaluations
into the report's budget section: a table of held-out returns by entry and step count, the
paired differences that answer "at the same number of samples, does adaptation beat a
model-free learner, and the global model?", the steps each entry needs to reach the best
model-free return at the largest budget, and one figure with every entry on one axis.

Pairs are by (training seed, test task, episode): the same initial states and schedules
(:func:`~learn2adapt.evaluation.statistics.paired_diff_ci95`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from learn2adapt.adaptation import MODEL_FREE
from learn2adapt.evaluation.results import EvalResult
from learn2adapt.evaluation.statistics import paired_diff_ci95
from learn2adapt.reporting.records import Budget, RunRecord, summarize
from learn2adapt.reporting.variants import base_algo, split, split_planner
from learn2adapt.reporting.variants import label as display

#: The report's budget figure.
BUDGET_PLOT = "returns_by_budget.png"
#: The global model the adaptive entries are set against (with the same planner and variant).
GLOBAL_MODEL = "mb"


def steps_dir(run_dir: Path, steps: int) -> Path:
    """Where a run's evaluation at ``steps`` environment steps goes."""
    return Path(run_dir) / "steps" / str(int(steps))


def budgets(records_by_steps: Mapping[int, Sequence[RunRecord]], names: Sequence[str], schedule: str) -> list[Budget]:
    """The summaries of every entry at every step count, smallest count first."""
    out = []
    for steps in sorted(records_by_steps):
        records = records_by_steps[steps]
        sums = {n: s for n in names if (s := summarize(n, records, schedule)) is not None}
        actual = {
            n: float(sum(r.evals[schedule].train_env_steps for r in rs) / len(rs))
            for n in sums
            if (rs := [r for r in records if r.algo == n and schedule in r.evals])
        }
        out.append(Budget(steps, sums, actual))
    return out


def references(names: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs ``(entry, reference)`` the budget section states: every model-based entry against
    every model-free one, and every other model-based entry against the global model
    (:data:`GLOBAL_MODEL`) with the same variant and planner."""
    model_free = [n for n in names if base_algo(n) in MODEL_FREE]
    pairs = []
    for n in names:
        if base_algo(n) in MODEL_FREE:
            continue
        pairs += [(n, m) for m in model_free]
        entry, planner = split_planner(n)
        algo, variant = split(entry)
        for other in names:
            o_entry, o_planner = split_planner(other)
            o_algo, o_variant = split(o_entry)
            if o_algo == GLOBAL_MODEL and algo != GLOBAL_MODEL and (o_variant, o_planner) == (variant, planner):
                pairs.append((n, other))
    return pairs


def first_budget_reaching(table: list[Budget], target: float) -> dict[str, str]:
    """Per entry: the first step count whose mean held-out return reaches ``target``."""
    out = {}
    names = dict.fromkeys(n for b in table for n in b.summaries)
    for n in names:
        hit = next((b.steps for b in table if n in b.summaries and b.summaries[n].return_stat.mean >= target), None)
        out[n] = f"{hit}" if hit is not None else f"not reached by {max(b.steps for b in table if n in b.summaries)}"
    return out


def _cell(d: float, h: float, n: int) -> str:
    if not n:
        return "-"
    mark = "**" if math.isfinite(h) and abs(d) > h else ""
    return f"{mark}{d:+.1f} ± {h:.1f}{mark}"


def budget_lines(
    records_by_steps: Mapping[int, Sequence[RunRecord]],
    names: Sequence[str],
    schedules: Sequence[str],
    oracles: dict[str, dict[str, list[EvalResult]]],
    out_dir: Path,
) -> tuple[list[str], dict[str, Any]]:
    """The report's budget section (Markdown lines) and its figures (for ``budgets.json``); draws
    :data:`BUDGET_PLOT` into ``out_dir``.

    Args:
        records_by_steps: per step count, the runs' records evaluated there (named by entry).
        names: the entries, in report order.
        schedules: the evaluation schedules.
        oracles: per planner (``""``: the runs' own), per schedule, the oracle's evaluations: its
            ceiling, drawn as a line (the oracle does not train, so it has no budget).
        out_dir: the report directory.
    """
    counts = sorted(records_by_steps)
    lines = [
        "## Held-out return by training budget",
        "",
        f"Every run evaluated while it trained, at the first checkpoint at or past each of {', '.join(map(str, counts))} "
        "environment steps (`compare --at-steps`), with the full protocol. Differences are paired by seed, test "
        "task and episode (**bold**: the 95% CI excludes 0).",
        "",
    ]
    data: dict[str, Any] = {"steps": counts, "schedules": {}}
    for schedule in schedules:
        table = budgets(records_by_steps, names, schedule)
        shown = [n for n in names if any(n in b.summaries for b in table)]
        if shown:
            schedule_lines, data["schedules"][schedule] = _schedule_budgets(schedule, table, shown, oracles, out_dir)
            lines += schedule_lines
    return lines, data


def _schedule_budgets(
    schedule: str,
    table: list[Budget],
    shown: Sequence[str],
    oracles: dict[str, dict[str, list[EvalResult]]],
    out_dir: Path,
) -> tuple[list[str], dict[str, Any]]:
    """One schedule's part of :func:`budget_lines`: returns by budget, paired differences, steps
    to reach the best model-free return, and the figure."""
    from learn2adapt.reporting.plots import plot_returns_by_budget

    header = ["entry", *[f"{b.steps} steps" for b in table]]
    lines = [f"### Schedule `{schedule}`", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for n in shown:
        lines.append(
            "| "
            + " | ".join([display(n), *[b.summaries[n].return_stat.fmt() if n in b.summaries else "-" for b in table]])
            + " |"
        )
    lines.append("")
    difference_lines, diffs = _differences(table, shown, header)
    reach_lines, target, reach = _steps_to_reach(table, shown)
    lines += difference_lines + reach_lines
    ceilings = {
        planner: sum(e.mean for e in by_schedule[schedule]) / len(by_schedule[schedule])
        for planner, by_schedule in oracles.items()
        if by_schedule.get(schedule)
    }
    plot = out_dir / BUDGET_PLOT.replace(".png", f"-{_file_safe(schedule)}.png")
    plot_returns_by_budget(table, shown, ceilings, schedule, plot)
    lines += [f"![]({plot.name})", ""]
    data = {
        "returns": {
            n: [b.summaries[n].return_stat.to_json() if n in b.summaries else None for b in table] for n in shown
        },
        "actual_steps": {n: [b.actual_steps.get(n) for b in table] for n in shown},
        "differences": diffs,
        "target": target,
        "steps_to_reach": reach,
        "oracle_ceilings": ceilings,
    }
    return lines, data


def _differences(
    table: list[Budget], shown: Sequence[str], header: Sequence[str]
) -> tuple[list[str], dict[str, list[list[float]]]]:
    """The table of paired differences of :func:`references` at every budget, and its figures
    (``[difference, CI half-width, pairs]`` per budget)."""
    pairs = references(shown)
    diffs: dict[str, list[list[float]]] = {}
    if not pairs:
        return [], diffs
    lines = ["| paired difference | " + " | ".join(header[1:]) + " |", "|" + "---|" * len(header)]
    for a, b in pairs:
        cells, values = [], []
        for budget in table:
            if a in budget.summaries and b in budget.summaries:
                d, h, k = paired_diff_ci95(budget.summaries[a].episodes, budget.summaries[b].episodes)
            else:
                d, h, k = math.nan, math.nan, 0
            cells.append(_cell(d, h, k))
            values.append([d, h, k])
        diffs[f"{a} - {b}"] = values
        lines.append(f"| {display(a)} - {display(b)} | " + " | ".join(cells) + " |")
    return lines + [""], diffs


def _steps_to_reach(table: list[Budget], shown: Sequence[str]) -> tuple[list[str], float, dict[str, str]]:
    """The best model-free return at the largest budget (NaN: no model-free entry), and the table of
    the step count at which each entry first reaches it."""
    model_free = [n for n in shown if base_algo(n) in MODEL_FREE and n in table[-1].summaries]
    if not model_free:
        return [], math.nan, {}
    best = max(model_free, key=lambda n: table[-1].summaries[n].return_stat.mean)
    target = table[-1].summaries[best].return_stat.mean
    reach = first_budget_reaching(table, target)
    lines = [
        f"Steps to reach {display(best)}'s return at {table[-1].steps} steps ({target:.1f}), among the "
        "step counts evaluated:",
        "",
        "| entry | steps |",
        "|---|---|",
        *[f"| {display(n)} | {reach[n]} |" for n in shown],
        "",
    ]
    return lines, target, reach


def _file_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def write_budgets_json(data: dict[str, Any], path: Path) -> None:
    from learn2adapt.run.run_dir import atomic_write_text

    atomic_write_text(Path(path), json.dumps(data, indent=2, allow_nan=True) + "\n")
