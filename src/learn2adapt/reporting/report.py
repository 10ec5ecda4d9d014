"""The report of a comparison: a Markdown summary, plots, and machine-readable numbers.

Everything in the report is computed from the run directories (``metrics.csv``,
``eval.json``, ``config.json``): the tables, the plots, and the sentences that
say which method did better and by how much. Nothing is hand-written.

How methods are compared (helpers in :mod:`learn2adapt.evaluation.statistics`):

- held-out returns: episode by episode, paired by (training seed, test task, episode
  index), which fixes the initial state and the schedule: the mean paired difference
  with its Student-t 95% interval (:func:`~learn2adapt.evaluation.statistics.paired_diff_ci95`);
- early post-switch reward per step (one value per seed): difference of means with a
  Welch 95% interval over training seeds
  (:func:`~learn2adapt.evaluation.statistics.diff_ci95`).

Each method's own figures carry a Student-t 95% interval: returns over every episode of
every seed (the all-tasks mean stratified by test task), the other quantities over seeds.
The plots are drawn by :mod:`learn2adapt.reporting.plots`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from learn2adapt.adaptation import MODEL_FREE
from learn2adapt.errors import UserError
from learn2adapt.evaluation.results import EvalResult
from learn2adapt.evaluation.statistics import diff_ci95, mean_ci95, paired_diff_ci95, relative_change
from learn2adapt.reporting.plots import SAMPLE_EFFICIENCY_PLOT, ReportInputs, plot_sample_efficiency, write_plots
from learn2adapt.reporting.records import (
    RECOVERY_WINDOW,
    AlgoSummary,
    RunRecord,
    fmt_g,
    heldout_curves,
    steps_to_reach,
    summarize,
)
from learn2adapt.reporting.variants import PLANNER_LABELS, base_algo, one_factor_pairs, planner_entry, split_planner
from learn2adapt.reporting.variants import label as display


def dynamic_eval_lines(records: Sequence[RunRecord]) -> list[str]:
    """MB+DE's test-time step size and number of steps in force after each run's last fit (chosen on
    held-out training episodes, ``adaptation.de_select``), with the validation errors behind the choice."""
    rows = []
    for r in records:
        last = r.metrics[-1] if r.metrics else {}
        if base_algo(r.algo) != "mbde" or not isinstance(last.get("fit/de_lr"), (int, float)):
            continue
        before, after = last.get("fit/val_loss_before_adapt"), last.get("fit/val_loss_after_adapt")
        errors = (
            f"{before:.4g} -> {after:.4g}"
            if isinstance(before, (int, float)) and isinstance(after, (int, float))
            else "n/a"
        )
        rows.append(f"| {display(r.algo)} | {r.seed} | {last['fit/de_lr']:g} | {last['fit/de_steps']:.0f} | {errors} |")
    if not rows:
        return []
    return [
        "MB+DE's test-time step, chosen after the last fit on held-out *training* episodes (step size 0: no "
        "pair of the grid beat the unadapted model there), with that validation error before -> after:",
        "",
        "| algorithm | seed | step size | steps | validation error |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


# --- reading a written summary ---------------------------------------------------------------
#: Keys of ``summary.json`` that are not evaluation schedules.
NOT_SCHEDULES = ("verdict", "oracle", "oracle_planners", "meta")


def load_summary(path: Path) -> tuple[str, dict[str, Any]]:
    """The environment and ``summary.json`` of a comparison: ``path`` is a ``compare`` output
    directory (``report/summary.json``) or a directory holding ``summary.json`` (a committed report).

    Raises:
        UserError: no summary there.
    """
    path = Path(path)
    found = next((p for p in (path / "report" / "summary.json", path / "summary.json") if p.exists()), None)
    if found is None:
        raise UserError(f"{path} holds no finished comparison (report/summary.json): run `learn2adapt compare` first")
    summary = json.loads(found.read_text())
    env = summary.get("meta", {}).get("env", "")
    if not env and (path / "compare.json").exists():  # summaries written before "meta" existed
        env = json.loads((path / "compare.json").read_text())["env"]
    return env or path.name, summary


def schedules_of(summary: dict[str, Any]) -> list[str]:
    """The evaluation schedules a ``summary.json`` holds."""
    return [k for k in summary if k not in NOT_SCHEDULES]


# --- computed verdicts --------------------------------------------------------------------
def _episodes_of(results: Sequence[EvalResult]) -> dict[tuple[int, int, int], float]:
    """Returns by (seed, task, episode) of per-seed evaluations (the keys :class:`AlgoSummary` pairs by)."""
    return {(r.seed, i, j): float(v) for r in results for i, t in enumerate(r.tasks) for j, v in enumerate(t.returns)}


def oracle_bound(results: Sequence[EvalResult], sums: Sequence[AlgoSummary]) -> dict[str, Any]:
    """The oracle's return (mean ± 95% CI over its episodes) and the best learned model's gap to it.

    Episodes are paired with the runs' by (seed, task, episode): the same initial states and schedules.
    """
    episodes = _episodes_of(results)
    mean, ci = mean_ci95(list(episodes.values()))
    out: dict[str, Any] = {
        "return": {"mean": mean, "ci95": ci, "n": len(episodes)},
        "seed_means": [r.mean for r in results],
    }
    learned = [s for s in sums if base_algo(s.algo) not in MODEL_FREE]  # model-free policies have no model to be wrong
    if learned:
        best = max(learned, key=lambda s: s.return_stat.mean)
        d, h, n = paired_diff_ci95(episodes, best.episodes)
        out["gap_to_best"] = {"algo": best.algo, "diff": d, "ci95": h, "pairs": n}
    return out


def oracle_lines(bound: dict[str, Any], planner: str | None = None) -> list[str]:
    """The oracle's sentences; ``planner``: the planner it (and the runs it is set against) planned with."""
    r = bound["return"]
    named = f"Oracle with {PLANNER_LABELS.get(planner, planner)}" if planner else "Oracle"
    lines = [
        f"{named} (MPC with the simulator as its model and the same planner, `learn2adapt oracle`): "
        f"**{r['mean']:.1f} ± {fmt_g(r['ci95'])}** over {r['n']} episodes (per-seed means "
        + ", ".join(f"{m:.1f}" for m in bound["seed_means"])
        + "): the return a perfect model would reach."
    ]
    gap = bound.get("gap_to_best")
    if gap:
        lines.append(
            f"Return lost to model error by the best learned model, {display(gap['algo'])}: {gap['diff']:+.4g} "
            f"(95% CI ±{fmt_g(gap['ci95'])}, paired over {gap['pairs']} episodes)."
        )
    return lines


def with_planner(sums: Sequence[AlgoSummary], planner: str) -> list[AlgoSummary]:
    """The summaries of entries evaluated with ``planner``, and of model-free ones (which have no planner)."""
    return [s for s in sums if split_planner(s.algo)[1] in (planner, None)]


def planner_lines(
    sums: Sequence[AlgoSummary], planners: Sequence[str], oracles: dict[str, list[EvalResult]]
) -> list[str]:
    """Held-out return by entry (rows) and evaluation planner (columns), the oracle's ceiling with
    each planner as the last row, and each later planner's paired difference from the first."""
    by_name = {s.algo: s for s in sums}
    entries = list(dict.fromkeys(split_planner(s.algo)[0] for s in sums if split_planner(s.algo)[1]))
    names = [PLANNER_LABELS.get(p, p) for p in planners]
    header = ["entry", *names, *[f"{n} - {names[0]} (paired)" for n in names[1:]]]

    def diff(a: dict[tuple[int, int, int], float], b: dict[tuple[int, int, int], float]) -> str:
        d, h, n = paired_diff_ci95(a, b)
        return f"{d:+.1f} ± {fmt_g(h)}" if n else "-"

    rows = []
    for entry in entries:
        found = [by_name.get(planner_entry(entry, p)) for p in planners]
        cells = [f.return_stat.fmt() if f else "-" for f in found]
        cells += [diff(f.episodes, found[0].episodes) if f and found[0] else "-" for f in found[1:]]
        rows.append([display(entry), *cells])
    if any(oracles.get(p) for p in planners):
        episodes = [_episodes_of(oracles.get(p, [])) for p in planners]
        cells = []
        for e in episodes:
            mean, ci = mean_ci95(list(e.values())) if e else (math.nan, math.nan)
            cells.append(f"{mean:.1f} ± {fmt_g(ci)}" if e else "-")
        cells += [diff(e, episodes[0]) if e and episodes[0] else "-" for e in episodes[1:]]
        rows.append(["oracle (the simulator as the model)", *cells])
    return [
        "Held-out return by the planner each trained model was evaluated with (the same runs, seeds and "
        "initial states; `compare --eval-planners`), mean ± 95% CI, and each planner's paired difference:",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
    ]


def compare_sentence(
    best: AlgoSummary, other: AlgoSummary, what: str, a: Sequence[float] | None = None, b: Sequence[float] | None = None
) -> str:
    """ "X beat Y by D (P%; 95% CI of the difference ±h): significant / within noise."

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
    return (
        f"{display(best.algo)} {verb} {display(other.algo)} on {what} by {d:+.4g} ({relative_change(d, ref)}; "
        f"95% CI of the difference ±{fmt_g(h)}, {basis}): {verdict}."
    )


def verdicts(summaries: list[AlgoSummary], schedule: str) -> list[str]:
    """Sentences saying which method did best under ``schedule``, and by how much."""
    if not summaries:
        return []
    out = []
    ranked = sorted(summaries, key=lambda s: s.return_stat.mean, reverse=True)
    best = ranked[0]
    out.append(
        f"**Held-out return, schedule `{schedule}`:** best is **{display(best.algo)}** "
        f"({best.return_stat.fmt()}, mean over test tasks ± 95% CI over {len(best.ret.samples)} episodes "
        f"from {len(best.seeds)} seeds)."
    )
    for other in ranked[1:]:
        out.append("- " + compare_sentence(best, other, "held-out return"))
    pairs = one_factor_pairs([s.algo for s in summaries])
    if pairs:
        by_name = {s.algo: s for s in summaries}
        out.append(
            "- One factor at a time (entries that differ only in the algorithm, only in the variant or only in "
            "the planner they were evaluated with):"
        )
        out += ["  - " + compare_sentence(by_name[a], by_name[b], "held-out return") for a, b in pairs]
    adaptive = [s for s in summaries if math.isfinite(s.pred_after.mean) and math.isfinite(s.pred_before.mean)]
    if adaptive:
        lowest = min(adaptive, key=lambda s: s.pred_after.mean)
        parts = []
        for s in adaptive:
            if s.pred_before.samples == s.pred_after.samples:
                parts.append(f"{display(s.algo)} {fmt_g(s.pred_before.mean)} (does not adapt)")
                continue
            cut = 1 - s.pred_after.mean / s.pred_before.mean if s.pred_before.mean > 0 else float("nan")
            parts.append(
                f"{display(s.algo)} {fmt_g(s.pred_before.mean)} → {fmt_g(s.pred_after.mean)} "
                f"({'-' if cut >= 0 else '+'}{abs(100 * cut):.0f}%)"
            )
        out.append(
            f"- Prediction error on held-out-task data, before → after adaptation: {'; '.join(parts)}. "
            f"Lowest after adaptation: {display(lowest.algo)}."
        )
    recov = [s for s in summaries if s.early_recovery.samples]
    if recov:
        ranked_r = sorted(recov, key=lambda s: s.early_recovery.mean, reverse=True)
        parts = [
            f"{display(s.algo)} {fmt_g(s.early_recovery.mean, 4)} (before the switch {fmt_g(s.pre_switch.mean, 4)})"
            for s in ranked_r
        ]
        out.append(
            f"- Reward per step in the first {RECOVERY_WINDOW} steps after a dynamics switch: {'; '.join(parts)}."
        )
        if len(ranked_r) > 1 and len(ranked_r[0].early_recovery.samples) >= 2:
            out.append(
                "  - "
                + compare_sentence(
                    ranked_r[0],
                    ranked_r[1],
                    "early post-switch reward per step",
                    a=ranked_r[0].early_recovery.samples,
                    b=ranked_r[1].early_recovery.samples,
                )
            )
    return out


def code_note(records: Sequence[RunRecord], schedules: Sequence[str], oracle: dict[str, list[EvalResult]]) -> str:
    """The protocol line naming the code that wrote every evaluation shown, with a warning when
    several versions did (:mod:`learn2adapt.provenance`)."""
    by_code: dict[str, list[str]] = {}
    for r in records:
        for code in dict.fromkeys(r.evals[s].code for s in schedules if s in r.evals):
            by_code.setdefault(code or "unrecorded", []).append(f"`{r.run_dir.name}`")
    for seed, code in dict.fromkeys((e.seed, e.code) for evals in oracle.values() for e in evals):
        by_code.setdefault(code or "unrecorded", []).append(f"oracle seed {seed}")
    if len(by_code) <= 1:
        return f"Every evaluation by learn2adapt `{next(iter(by_code), 'n/a')}`."
    versions = "; ".join(f"`{code}`: {', '.join(names)}" for code, names in by_code.items())
    return (
        f"**Evaluations by {len(by_code)} versions of the code**: differences between rows may partly come "
        f"from the code (run the comparison again without `--reuse-stale-evaluations` to evaluate every run "
        f"with one). {versions}."
    )


# --- the report ---------------------------------------------------------------------------
def write_report(
    records: Sequence[RunRecord],
    out_dir: Path,
    title: str,
    algos: Sequence[str],
    schedules: Sequence[str],
    notes: Sequence[str] = (),
    oracle: dict[str, list[EvalResult]] | None = None,
    planners: Sequence[str] = (),
    planner_oracles: dict[str, dict[str, list[EvalResult]]] | None = None,
    sections: Sequence[str] = (),
) -> Path:
    """Write ``report.md``, the plots and ``summary.json`` to ``out_dir``; returns report.md's path.

    ``oracle``: per schedule, the oracle's evaluations (one per seed), reported beside the runs.
    ``planners``: the evaluation planners of ``compare --eval-planners`` (entries named
    ``ENTRY@PLANNER``), tabled side by side; ``planner_oracles``: per planner, the oracle planned
    with it (per schedule, one evaluation per seed), each set against the runs of its planner.
    ``sections``: Markdown lines the caller computed (the budget section of ``--at-steps``), placed
    before the protocol.
    """
    oracle = oracle or {}
    planner_oracles = planner_oracles or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_schedule: dict[str, list[AlgoSummary]] = {}
    for schedule in schedules:
        by_schedule[schedule] = [s for s in (summarize(a, records, schedule) for a in algos) if s is not None]

    plots = write_plots(ReportInputs(records, algos, by_schedule), out_dir)

    lines = [
        f"# {title}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {len({r.run_dir for r in records})} run directories. "
        "Every number and sentence below is computed from them.",
        "",
    ]
    lines += ["## Verdict", ""]
    for schedule, sums in by_schedule.items():
        lines += verdicts(sums, schedule) + [""]

    for schedule, sums in by_schedule.items():
        if not sums:
            continue
        lines += [f"## Held-out returns, schedule `{schedule}`", ""]
        task_labels = [label for label, _ in sums[0].per_task]
        moving = any(s.velocity.samples for s in sums)
        header = ["algorithm", "seeds", "return (all test tasks)"] + (["forward velocity (m/s)"] if moving else [])
        header += ["per-seed means"] + [f"`{t}`" for t in task_labels]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for s in sums:
            row = [display(s.algo), str(len(s.seeds)), s.return_stat.fmt()]
            row += [s.velocity.fmt(2) if s.velocity.samples else "-"] if moving else []
            row += [", ".join(f"{m:.1f}" for m in s.seed_means)] + [st.fmt() for _, st in s.per_task]
            lines.append("| " + " | ".join(row) + " |")
        lines += [
            "",
            "Mean ± 95% CI over every episode of every seed (all-tasks column: the mean of the task means, "
            "CI stratified by task).",
            "",
        ]
        if oracle.get(schedule):
            lines += oracle_lines(oracle_bound(oracle[schedule], sums)) + [""]
        for planner, by_schedule_p in planner_oracles.items():
            if by_schedule_p.get(schedule):
                bound = oracle_bound(by_schedule_p[schedule], with_planner(sums, planner))
                lines += oracle_lines(bound, planner) + [""]
        if planners:
            oracles = {p: planner_oracles.get(p, {}).get(schedule, []) for p in planners}
            lines += planner_lines(sums, planners, oracles)
        lines += [
            "| algorithm | pred. error before adaptation | after | early post-switch reward/step | "
            "pre-switch reward/step | env steps (training) | training wall-clock (s) | eval wall-clock (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in sums:
            lines.append(
                f"| {display(s.algo)} | {s.pred_before.fmt(-3)} | {s.pred_after.fmt(-3)} | "
                f"{s.early_recovery.fmt(-3)} | {s.pre_switch.fmt(-3)} | {s.env_steps.mean:.0f} | "
                f"{s.train_wall.mean:.0f} | {s.eval_wall.mean:.0f} |"
            )
        lines.append("")
        recall = [s for s in sums if s.first_visit.samples or s.revisit.samples]
        if recall and any(s.revisit.samples for s in recall):
            lines += [
                "Recall: reward per step in the first steps after a switch to a task first seen in the episode vs "
                "seen before; for mixture rules, the models held and the MAP model against the true task.",
                "",
                "| algorithm | first visit | revisit | models held | assignment purity | adjusted Rand index |",
                "|---|---|---|---|---|---|",
            ]
            for s in recall:
                lines.append(
                    f"| {display(s.algo)} | {s.first_visit.fmt(-3)} | {s.revisit.fmt(-3)} | "
                    f"{s.mean_models.fmt(-2) if s.mean_models.samples else '-'} | "
                    f"{s.purity.fmt(-2) if s.purity.samples else '-'} | {s.ari.fmt(-2) if s.ari.samples else '-'} |"
                )
            lines.append("")

    lines += dynamic_eval_lines(records)
    lines += ["## Plots", ""]
    for plot in plots:
        lines += [plot.caption, "", f"![]({plot.file})", ""]
    curves = heldout_curves(records, algos)
    if curves:
        target, reach = steps_to_reach(curves, MODEL_FREE)
        plot_sample_efficiency(curves, out_dir / SAMPLE_EFFICIENCY_PLOT)
        lines += [
            "## Sample efficiency",
            "",
            "Held-out return (`fixed`, one episode per test task and seed, mean over seeds) measured during "
            "training, against environment steps (log axis):",
            "",
            f"![]({SAMPLE_EFFICIENCY_PLOT})",
            "",
            f"Environment steps to reach {target:.1f}, the best model-based method's final held-out return:",
            "",
            "| algorithm | steps to reach it |",
            "|---|---|",
            *[f"| {display(a)} | {reach[a]} |" for a in algos if a in reach],
            "",
        ]
    lines += list(sections)
    lines += (
        ["## Protocol", ""]
        + [f"- {n}" for n in notes]
        + [
            f"- {code_note(records, schedules, oracle)}",
            f"- Schedules evaluated: {', '.join(f'`{s}`' for s in schedules)}; held-out (test-split) tasks only.",
            "- Runs: " + ", ".join(dict.fromkeys(f"`{r.run_dir.name}`" for r in records)) + ".",
            "",
        ]
    )
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))

    summary: dict[str, Any] = {
        schedule: {
            s.algo: {
                "seeds": s.seeds,
                "return": s.return_stat.to_json(),
                "seed_means": s.seed_means,
                "per_task": {label: st.to_json() for label, st in s.per_task},
                "pred_error_before": s.pred_before.to_json(),
                "pred_error_after": s.pred_after.to_json(),
                "forward_velocity": s.velocity.to_json(),
                "early_recovery": s.early_recovery.to_json(),
                "pre_switch": s.pre_switch.to_json(),
                "first_visit_reward": s.first_visit.to_json(),
                "revisit_reward": s.revisit.to_json(),
                "mixture_models": s.mean_models.to_json(),
                "assignment_purity": s.purity.to_json(),
                "assignment_ari": s.ari.to_json(),
                "env_steps": s.env_steps.mean,
                "train_wall_seconds": s.train_wall.mean,
                "eval_wall_seconds": s.eval_wall.mean,
                "per_seed": s.per_seed,
                "episodes": [[*key, value] for key, value in sorted(s.episodes.items())],
            }
            for s in sums
        }
        for schedule, sums in by_schedule.items()
    }
    summary["verdict"] = [v for schedule, sums in by_schedule.items() for v in verdicts(sums, schedule)]
    summary["meta"] = {"env": next((e.env for r in records for e in r.evals.values()), "")}
    if oracle:
        summary["oracle"] = {s: oracle_bound(oracle[s], by_schedule[s]) for s in oracle if oracle[s]}
    if planner_oracles:
        summary["oracle_planners"] = {
            p: {s: oracle_bound(r[s], with_planner(by_schedule[s], p)) for s in r if r[s]}
            for p, r in planner_oracles.items()
        }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return report
