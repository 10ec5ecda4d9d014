"""Online rules compared on the same meta-trained models (``learn2adapt compare-online``): one
markdown table per schedule and its figures as JSON.

A table row is a rule: its held-out return (mean ± 95% CI over runs, and per run) and, where the
evaluations measured recall (a mixture rule, a schedule that revisits tasks), the recall measures
of ``docs/experiments.md`` (reward per step after a first visit / a revisit, the revisit gain
paired by episode, recall rate, models per task, assignment purity and ARI). Below it, each rule
against the first: the paired difference of held-out return by (run, test task, episode), the
same model, task and episode seed under both rules, and by run; and the difference of their
revisit gains over the same episodes (difference in differences).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from learn2adapt.evaluation.statistics import mean_ci95, paired_diff_ci95
from learn2adapt.run.run_dir import atomic_write_text

#: The recall measures tabled (``eval.json``'s ``recall``), in the table's order.
RECALL = (
    "first_visit_reward",
    "revisit_reward",
    "revisit_gain",
    "recall_rate",
    "models_per_task",
    "purity",
    "ari",
)

#: ``{schedule: {rule: {run name: eval.json dict}}}``: the evaluations a report tables.
Results = dict[str, dict[str, dict[str, dict[str, Any]]]]


def schedule_slug(schedule: str) -> str:
    """A schedule spec as a file-name part: ``recurring:period=50`` -> ``recurring-period-50``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", schedule).strip("-")


def eval_file(out: Path, run_name: str, rule: str, schedule: str) -> Path:
    """Where the evaluation of run ``run_name`` with ``rule`` under ``schedule`` is kept in ``out``."""
    return Path(out) / f"{run_name}-{rule}-{schedule_slug(schedule)}.json"


def _episode_returns(result: dict[str, Any]) -> dict[tuple[int, int], float]:
    return {(i, j): float(r) for i, task in enumerate(result["tasks"]) for j, r in enumerate(task["returns"])}


def _gains(runs: dict[str, dict[str, Any]]) -> dict[tuple[str, int], float]:
    """Each episode's revisit gain (``recall.episode_gains``), keyed by (run, episode); NaN: no pair."""
    out = {}
    for name, result in runs.items():
        for i, g in enumerate((result.get("recall") or {}).get("episode_gains", [])):
            if g == g:
                out[(name, i)] = float(g)
    return out


def _rule_row(rule: str, runs: dict[str, dict[str, Any]], has_recall: bool) -> tuple[dict[str, Any], list[str]]:
    """A rule's figures and its table cells."""
    means = [float(r["mean"]) for r in runs.values()]
    m, h = mean_ci95(means)
    row: dict[str, Any] = {"mean": m, "ci95": h, "per_run": {k: float(r["mean"]) for k, r in runs.items()}}
    cells = [rule, f"{m:.1f} ± {h:.1f}", " / ".join(f"{v:.1f}" for v in means)]
    if not has_recall:
        return row, cells
    for key in RECALL:
        if key == "revisit_gain":  # over every episode of every run that has both
            g, gh = mean_ci95([x for x in _gains(runs).values() if x == x])
            row[key], row[key + "_ci95"] = g, gh
            verdict = "**" if abs(g) > gh else ""
            cells.append(f"{verdict}{g:+.2f} ± {gh:.2f}{verdict}" if g == g else "-")
            continue
        vals = [float(r["recall"].get(key, "nan")) for r in runs.values() if r.get("recall")]
        vals = [v for v in vals if v == v]  # GrBAL holds no mixture: no models, purity, ARI
        row[key] = sum(vals) / len(vals) if vals else None
        cells.append(f"{row[key]:.2f}" if vals else "-")
    return row, cells


def _against_reference(
    rule: str, base: str, by_rule: dict[str, dict[str, dict[str, Any]]], has_recall: bool
) -> tuple[list[str], dict[str, Any]]:
    """The lines and figures of ``rule`` against the reference rule ``base``."""
    a = {(run, *k): v for run, r in by_rule[rule].items() for k, v in _episode_returns(r).items()}
    b = {(run, *k): v for run, r in by_rule[base].items() for k, v in _episode_returns(r).items()}
    d, h, n = paired_diff_ci95(a, b)
    ds, hs, ns = paired_diff_ci95(
        {k: float(r["mean"]) for k, r in by_rule[rule].items()},
        {k: float(r["mean"]) for k, r in by_rule[base].items()},
    )
    verdict = "higher" if d - h > 0 else "lower" if d + h < 0 else "within noise"
    lines = [
        f"{rule} - {base}: {d:+.1f} ± {h:.1f} paired by episode ({n} pairs; {verdict}); "
        f"{ds:+.1f} ± {hs:.1f} paired by run ({ns} runs)."
    ]
    figures: dict[str, Any] = {
        "by_episode": {"diff": d, "ci95": h, "pairs": n},
        "by_run": {"diff": ds, "ci95": hs, "pairs": ns},
    }
    if has_recall:  # what recall adds: the revisit gain of one rule against the other's, same episodes
        dd, dh, dn = paired_diff_ci95(_gains(by_rule[rule]), _gains(by_rule[base]))
        if dn:
            lines.append(
                f"revisit gain, {rule} - {base}: {dd:+.2f} ± {dh:.2f} reward per step "
                f"(difference in differences, {dn} episodes)."
            )
            figures["revisit_gain"] = {"diff": dd, "ci95": dh, "pairs": dn}
    return lines, figures


def summarise(results: Results, rules: list[str]) -> tuple[str, dict[str, Any]]:
    """The markdown tables (one per schedule) and their figures as JSON; ``rules[0]`` is the reference."""
    lines: list[str] = []
    summary: dict[str, Any] = {}
    for schedule, by_rule in results.items():
        lines += [f"## `{schedule}`", ""]
        head = "| rule | held-out return (mean ± 95% CI over runs) | per run |"
        has_recall = any(r.get("recall") for rr in by_rule.values() for r in rr.values())
        if has_recall:
            head += (
                " reward/step after a first visit | after a revisit | revisit - first visit (paired by episode)"
                " | recall rate | models per task | purity | ARI |"
            )
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        summary[schedule] = {}
        for rule in rules:
            row, cells = _rule_row(rule, by_rule[rule], has_recall)
            summary[schedule][rule] = row
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for rule in rules[1:]:
            more, figures = _against_reference(rule, rules[0], by_rule, has_recall)
            lines += more
            summary[schedule][f"{rule}-{rules[0]}"] = figures
        lines.append("")
    return "\n".join(lines), summary


def write_online_report(out: Path, text: str, summary: dict[str, Any], command: str) -> Path:
    """``out/report.md`` (the tables under the command that made them) and ``out/summary.json``;
    returns the report's path."""
    report = Path(out) / "report.md"
    atomic_write_text(report, f"# Online rules on the same models\n\nCommand: `{command}`\n\n{text}")
    atomic_write_text(Path(out) / "summary.json", json.dumps(summary, indent=1) + "\n")
    return report
