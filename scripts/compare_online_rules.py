"""Compare online rules on the same meta-trained models: GrBAL's step against MOLe's mixture.

Every run directory is evaluated once per (schedule, rule) with ``learn2adapt eval RUN
--schedule S --online RULE`` (results reused when their file exists), then one markdown
table per schedule is written: held-out return per rule, the recall measures of
``docs/experiments.md`` (reward per step after a first visit / a revisit, models held,
assignment purity and ARI) and the paired difference of each rule against the first,
paired by (run, test task, episode): the same model, task and episode seed under both
rules. Example (the GrBAL runs of a comparison, docs/algorithms/mole.md)::

    .venv/bin/python scripts/compare_online_rules.py runs/cmp/runs/grbal-s* \\
        --schedule fixed --schedule recurring:period=50 --out results/mole/pendulum
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from learn2adapt.cli import main as cli
from learn2adapt.evaluation.statistics import mean_ci95, paired_diff_ci95

RECALL = (
    "first_visit_reward",
    "revisit_reward",
    "revisit_gain",
    "recall_rate",
    "models_per_task",
    "purity",
    "ari",
)


def _slug(schedule: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", schedule).strip("-")


def evaluate(
    runs: list[Path], schedules: list[str], rules: list[str], out: Path, episodes: int | None, sets: list[str]
) -> dict:
    """``{schedule: {rule: {run name: eval.json dict}}}``, running the evaluations still missing."""
    results: dict = {}
    for schedule in schedules:
        for rule in rules:
            for run in runs:
                path = out / f"{run.name}-{rule}-{_slug(schedule)}.json"
                if not path.exists():
                    argv = [
                        "eval",
                        str(run),
                        "--schedule",
                        schedule,
                        "--online",
                        rule,
                        "--output",
                        str(path),
                        "--quiet",
                    ]
                    if episodes is not None:
                        argv += ["--episodes", str(episodes)]
                    for item in sets:  # test-time options (e.g. adaptation.mixture.lr), every rule
                        argv += ["--set", item]
                    print(f"eval {run.name} --online {rule} --schedule {schedule}", flush=True)
                    if cli(argv) != 0:
                        raise SystemExit(f"evaluation failed: {' '.join(argv)}")
                results.setdefault(schedule, {}).setdefault(rule, {})[run.name] = json.loads(path.read_text())
    return results


def _episode_returns(result: dict) -> dict[tuple, float]:
    return {(i, j): float(r) for i, task in enumerate(result["tasks"]) for j, r in enumerate(task["returns"])}


def _gains(runs: dict) -> dict[tuple, float]:
    """Each episode's revisit gain (``recall.episode_gains``), keyed by (run, episode); NaN: no pair."""
    out = {}
    for name, result in runs.items():
        for i, g in enumerate((result.get("recall") or {}).get("episode_gains", [])):
            if g == g:
                out[(name, i)] = float(g)
    return out


def summarise(results: dict, rules: list[str]) -> tuple[str, dict]:
    """The markdown tables and their figures as JSON."""
    lines, summary = [], {}
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
            runs = by_rule[rule]
            means = [float(r["mean"]) for r in runs.values()]
            m, h = mean_ci95(means)
            row = {"mean": m, "ci95": h, "per_run": {k: float(r["mean"]) for k, r in runs.items()}}
            cells = [rule, f"{m:.1f} ± {h:.1f}", " / ".join(f"{v:.1f}" for v in means)]
            if has_recall:
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
            summary[schedule][rule] = row
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        base = rules[0]
        for rule in rules[1:]:
            a = {(run, *k): v for run, r in by_rule[rule].items() for k, v in _episode_returns(r).items()}
            b = {(run, *k): v for run, r in by_rule[base].items() for k, v in _episode_returns(r).items()}
            d, h, n = paired_diff_ci95(a, b)
            ds, hs, ns = paired_diff_ci95(
                {k: float(r["mean"]) for k, r in by_rule[rule].items()},
                {k: float(r["mean"]) for k, r in by_rule[base].items()},
            )
            verdict = "higher" if d - h > 0 else "lower" if d + h < 0 else "within noise"
            lines.append(
                f"{rule} - {base}: {d:+.1f} ± {h:.1f} paired by episode ({n} pairs; {verdict}); "
                f"{ds:+.1f} ± {hs:.1f} paired by run ({ns} runs)."
            )
            summary[schedule][f"{rule}-{base}"] = {
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
                    summary[schedule][f"{rule}-{base}"]["revisit_gain"] = {"diff": dd, "ci95": dh, "pairs": dn}
        lines.append("")
    return "\n".join(lines), summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (meta-trained GrBAL or MOLe runs)")
    parser.add_argument("--schedule", action="append", required=True, help="evaluation schedule (repeatable)")
    parser.add_argument("--rules", default="grbal,mole", help="online rules, the first is the reference")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per test task (default: the run's)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the eval JSONs and report.md")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="test-time option of every evaluation"
    )
    args = parser.parse_args()
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    missing = [str(r) for r in args.runs if not (r / "config.json").exists()]
    if missing or len(rules) < 2:
        print(f"error: {'not run directories: ' + ', '.join(missing) if missing else '--rules needs two rules'}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = evaluate(args.runs, args.schedule, rules, args.out, args.episodes, args.set)
    text, summary = summarise(results, rules)
    command = "scripts/compare_online_rules.py " + " ".join(sys.argv[1:])
    (args.out / "report.md").write_text(f"# Online rules on the same models\n\nCommand: `{command}`\n\n{text}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
