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
The plots are drawn by :mod:`learn2adapt.reporting.plots`, the verdicts written by
:mod:`learn2adapt.reporting.verdicts`; :func:`write_report` puts one section after another.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from learn2adapt.adaptation import MODEL_FREE
from learn2adapt.errors import UserError
from learn2adapt.evaluation.results import EvalResult
from learn2adapt.evaluation.statistics import mean_ci95, paired_diff_ci95
from learn2adapt.moved import moved_names
from learn2adapt.reporting.plots import SAMPLE_EFFICIENCY_PLOT, ReportInputs, plot_sample_efficiency, write_plots
from learn2adapt.reporting.records import (
    AlgoSummary,
    RunRecord,
    fmt_g,
    heldout_curves,
    steps_to_reach,
    summarize,
)
from learn2adapt.reporting.variants import PLANNER_LABELS, base_algo, planner_entry, split_planner
from learn2adapt.reporting.variants import label as display
from learn2adapt.reporting.verdicts import verdicts

#: Names that moved out of this module (issue 41): importable from here, with a
#: DeprecationWarning, until 0.3.
if not TYPE_CHECKING:  # mypy sees no __getattr__, so it still flags a name imported from the wrong module
    __getattr__ = moved_names(
        __name__,
        {"compare_sentence": "learn2adapt.reporting.verdicts", "RECOVERY_WINDOW": "learn2adapt.reporting.records"},
    )


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
        if sums:
            lines += schedule_lines(schedule, sums, oracle, planners, planner_oracles)
    lines += dynamic_eval_lines(records)
    lines += ["## Plots", ""]
    for plot in plots:
        lines += [plot.caption, "", f"![]({plot.file})", ""]
    lines += sample_efficiency_lines(records, algos, out_dir)
    lines += list(sections)
    lines += protocol_lines(notes, records, schedules, oracle)
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    summary = summary_json(by_schedule, records, oracle, planner_oracles)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return report


def schedule_lines(
    schedule: str,
    sums: Sequence[AlgoSummary],
    oracle: dict[str, list[EvalResult]],
    planners: Sequence[str],
    planner_oracles: dict[str, dict[str, list[EvalResult]]],
) -> list[str]:
    """The section of one schedule: the held-out returns, the oracle's bound, the planners side
    by side, model error and cost, and recall (see :func:`write_report` for the arguments)."""
    lines = [f"## Held-out returns, schedule `{schedule}`", ""]
    lines += returns_table(sums)
    if oracle.get(schedule):
        lines += oracle_lines(oracle_bound(oracle[schedule], sums)) + [""]
    for planner, by_schedule_p in planner_oracles.items():
        if by_schedule_p.get(schedule):
            bound = oracle_bound(by_schedule_p[schedule], with_planner(sums, planner))
            lines += oracle_lines(bound, planner) + [""]
    if planners:
        oracles = {p: planner_oracles.get(p, {}).get(schedule, []) for p in planners}
        lines += planner_lines(sums, planners, oracles)
    return lines + model_table(sums) + recall_table(sums)


def returns_table(sums: Sequence[AlgoSummary]) -> list[str]:
    """Held-out return per method: over all test tasks, per seed and per task (and the forward
    velocity of a locomotion family)."""
    task_labels = [label for label, _ in sums[0].per_task]
    moving = any(s.velocity.samples for s in sums)
    header = ["algorithm", "seeds", "return (all test tasks)"] + (["forward velocity (m/s)"] if moving else [])
    header += ["per-seed means"] + [f"`{t}`" for t in task_labels]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in sums:
        row = [display(s.algo), str(len(s.seeds)), s.return_stat.fmt()]
        row += [s.velocity.fmt(2) if s.velocity.samples else "-"] if moving else []
        row += [", ".join(f"{m:.1f}" for m in s.seed_means)] + [st.fmt() for _, st in s.per_task]
        lines.append("| " + " | ".join(row) + " |")
    return lines + [
        "",
        "Mean ± 95% CI over every episode of every seed (all-tasks column: the mean of the task means, "
        "CI stratified by task).",
        "",
    ]


def model_table(sums: Sequence[AlgoSummary]) -> list[str]:
    """Per method: the prediction error before and after adaptation, the reward around a switch,
    and the cost (environment steps, wall-clock)."""
    lines = [
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
    return lines + [""]


def recall_table(sums: Sequence[AlgoSummary]) -> list[str]:
    """First visit against revisit of a task, and the mixture's assignment (none without a revisit)."""
    recall = [s for s in sums if s.first_visit.samples or s.revisit.samples]
    if not (recall and any(s.revisit.samples for s in recall)):
        return []
    lines = [
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
    return lines + [""]


def sample_efficiency_lines(records: Sequence[RunRecord], algos: Sequence[str], out_dir: Path) -> list[str]:
    """The held-out return measured during training against environment steps (none without
    ``--sample-efficiency``); draws :data:`~learn2adapt.reporting.plots.SAMPLE_EFFICIENCY_PLOT`."""
    curves = heldout_curves(records, algos)
    if not curves:
        return []
    target, reach = steps_to_reach(curves, MODEL_FREE)
    plot_sample_efficiency(curves, out_dir / SAMPLE_EFFICIENCY_PLOT)
    return [
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


def protocol_lines(
    notes: Sequence[str], records: Sequence[RunRecord], schedules: Sequence[str], oracle: dict[str, list[EvalResult]]
) -> list[str]:
    """The protocol: the caller's notes, the code behind the evaluations, the schedules and the runs."""
    return (
        ["## Protocol", ""]
        + [f"- {n}" for n in notes]
        + [
            f"- {code_note(records, schedules, oracle)}",
            f"- Schedules evaluated: {', '.join(f'`{s}`' for s in schedules)}; held-out (test-split) tasks only.",
            "- Runs: " + ", ".join(dict.fromkeys(f"`{r.run_dir.name}`" for r in records)) + ".",
            "",
        ]
    )


def summary_json(
    by_schedule: dict[str, list[AlgoSummary]],
    records: Sequence[RunRecord],
    oracle: dict[str, list[EvalResult]],
    planner_oracles: dict[str, dict[str, list[EvalResult]]],
) -> dict[str, Any]:
    """``summary.json``: every method's figures per schedule, the verdicts, and the oracle's bounds."""
    summary: dict[str, Any] = {
        schedule: {s.algo: _summary_of(s) for s in sums} for schedule, sums in by_schedule.items()
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
    return summary


def _summary_of(s: AlgoSummary) -> dict[str, Any]:
    """One method's figures under one schedule, as ``summary.json`` holds them."""
    return {
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
