"""The paper's qualitative claims, checked domain by domain against our comparisons.

Nagabandi, Clavera et al. (ICLR 2019, Sec. 6) make four claims on each of their domains:

1. GrBAL and ReBAL beat MB on held-out return;
2. they beat MB+DE (adaptation must be meta-learned, not just applied at test time);
3. adaptation cuts the one-step prediction error on held-out-task data (the K future
   transitions after adapting on M: after < before);
4. adaptation helps most right after a mid-episode change of dynamics: the adaptive method's
   lead over MB in reward per step over the first steps after a switch is larger than its lead
   before the switch;

and the question a reader asks first (the paper's premise, sample efficiency):

5. at equal environment steps, GrBAL and ReBAL beat a stock SAC on held-out return.

``learn2adapt claims DIR...`` reads the ``summary.json`` of each comparison (a ``compare``
output or a committed report) and gives every claim, per domain and schedule, the measured
difference with its 95% CI and a verdict: **supports** (the CI excludes 0 in the claimed
direction), **contradicts** (it excludes 0 the other way), **within noise**, or **not
measured** (an algorithm or a measure is missing, or, for claim 5, the two were trained on
different numbers of steps). Returns are paired by episode (seed, test task, episode index: the
same initial state and schedule for every method); prediction errors and post-switch rewards by
seed. An entry evaluated with several planners (``grbal@cem``, ``compare --eval-planners``) is
checked per planner, against the baseline evaluated with the same planner.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from learn2adapt.errors import UserError
from learn2adapt.evaluation.statistics import paired_diff_ci95
from learn2adapt.reporting.records import RECOVERY_WINDOW
from learn2adapt.reporting.report import load_summary, schedules_of
from learn2adapt.reporting.variants import PLANNER_SEPARATOR, label, split_planner

#: The adaptive methods the claims are about, and the baselines they are compared with.
ADAPTIVE = ("grbal", "rebal")
CLAIMS = {
    1: "GrBAL and ReBAL beat MB on held-out return",
    2: "GrBAL and ReBAL beat MB+DE on held-out return",
    3: "adaptation cuts the prediction error on held-out-task data (before minus after > 0)",
    4: (
        f"adaptation helps most right after a mid-episode change: the lead over MB in reward per step "
        f"over the {RECOVERY_WINDOW} steps after a switch exceeds the lead before it"
    ),
    5: "at equal environment steps, GrBAL and ReBAL beat SAC on held-out return",
}


@dataclass
class Check:
    """One claim, measured on one domain under one schedule for one method."""

    claim: int
    env: str
    schedule: str
    comparison: str
    diff: float
    ci95: float
    pairs: int
    basis: str
    verdict: str


def verdict(diff: float, ci95: float, pairs: int) -> str:
    """Supports / contradicts (95% CI excludes 0, positive = as claimed) / within noise / not measured."""
    if pairs == 0 or not math.isfinite(diff):
        return "not measured"
    if not math.isfinite(ci95):
        return "too few samples"
    if diff - ci95 > 0:
        return "supports"
    if diff + ci95 < 0:
        return "contradicts"
    return "within noise"


def _episodes(row: dict[str, Any]) -> dict[tuple[int, int, int], float]:
    return {(int(s), int(t), int(e)): float(r) for s, t, e, r in row.get("episodes", [])}


def _per_seed(row: dict[str, Any], name: str) -> dict[int, float]:
    values = row.get("per_seed", {}).get(name, [])
    return {int(s): float(v) for s, v in zip(row["seeds"], values) if v is not None and math.isfinite(float(v))}


def check_domain(env: str, summary: dict[str, Any], budgets: dict[str, Any] | None = None) -> list[Check]:
    """Every claim of the module docstring on one comparison, for each schedule it evaluated.

    Args:
        env: the comparison's environment id.
        summary: its ``summary.json``.
        budgets: its ``budgets.json`` (``compare --at-steps``), if any: claim 5 is then checked at
            every step count evaluated, from the paired differences recorded there, rather than
            at the final budget alone.
    """
    checks = []
    for schedule in schedules_of(summary):
        rows = summary[schedule]
        by_budget = (budgets or {}).get("schedules", {}).get(schedule)
        budget_steps = (budgets or {}).get("steps", [])

        def add(claim: int, comparison: str, d: float, h: float, n: int, basis: str, schedule: str = schedule) -> None:
            checks.append(Check(claim, env, schedule, comparison, d, h, n, basis, verdict(d, h, n)))

        for algo, planner in _adaptive_entries(rows):
            entry = algo + planner
            row = rows.get(entry)
            for claim, base in ((1, "mb" + planner), (2, "mbde" + planner)):
                other = rows.get(base)
                if row is None or other is None:
                    add(claim, f"{label(entry)} - {label(base)}", math.nan, math.nan, 0, "not in this comparison")
                    continue
                d, h, n = paired_diff_ci95(_episodes(row), _episodes(other))
                add(claim, f"{label(entry)} - {label(base)}", d, h, n, "return, paired by episode")
            if row is None:
                add(3, f"{label(entry)}: before - after", math.nan, math.nan, 0, "not in this comparison")
                continue
            d, h, n = paired_diff_ci95(_per_seed(row, "pred_error_before"), _per_seed(row, "pred_error_after"))
            add(3, f"{label(entry)}: before - after", d, h, n, "prediction error, paired by seed")
            sac = rows.get("sac")
            if sac is not None and by_budget is not None and f"{entry} - sac" in by_budget["differences"]:
                steps = by_budget["actual_steps"]
                for i, target in enumerate(budget_steps):
                    d, h, n = by_budget["differences"][f"{entry} - sac"][i]
                    if steps[entry][i] != steps["sac"][i]:
                        add(5, f"{label(entry)} - SAC", math.nan, math.nan, 0, f"unequal env steps near {target}")
                    else:
                        add(5, f"{label(entry)} - SAC", d, h, n, f"return at {target} steps, paired by episode")
            elif sac is not None:  # claim 5 is asked only of comparisons that ran SAC
                steps = (row.get("env_steps"), sac.get("env_steps"))
                if steps[0] != steps[1]:
                    add(
                        5, f"{label(entry)} - SAC", math.nan, math.nan, 0, f"unequal env steps {steps[0]} vs {steps[1]}"
                    )
                else:
                    d, h, n = paired_diff_ci95(_episodes(row), _episodes(sac))
                    add(5, f"{label(entry)} - SAC", d, h, n, f"return at {steps[0]:.0f} steps, paired by episode")
            mb = rows.get("mb" + planner)
            if mb is None:
                continue
            early, pre = _per_seed(row, "early_recovery"), _per_seed(row, "pre_switch")
            early_mb, pre_mb = _per_seed(mb, "early_recovery"), _per_seed(mb, "pre_switch")
            seeds = set(early) & set(pre) & set(early_mb) & set(pre_mb)
            if not seeds:
                continue  # no switch in this schedule: claim 4 does not apply
            after_lead = {s: early[s] - early_mb[s] for s in seeds}
            before_lead = {s: pre[s] - pre_mb[s] for s in seeds}
            d, h, n = paired_diff_ci95(after_lead, before_lead)
            add(
                4,
                f"{label(entry)} - {label('mb' + planner)}: lead after - lead before",
                d,
                h,
                n,
                "reward per step, paired by seed",
            )
    return checks


def _adaptive_entries(rows: dict[str, Any]) -> list[tuple[str, str]]:
    """``(algorithm, planner suffix)`` of each adaptive entry to check: every planner an adaptive
    entry was evaluated with (``("grbal", "@cem")``), or each adaptive algorithm once with no suffix
    when none was (so a missing one is reported as not measured)."""
    planners = {split_planner(name)[1] for name in rows} - {None}
    suffixes = sorted(PLANNER_SEPARATOR + str(p) for p in planners)
    return [(algo, planner) for algo in ADAPTIVE for planner in (suffixes or [""])]


def _load_budgets(path: Path) -> dict[str, Any] | None:
    """A comparison's ``budgets.json``, beside its summary (see ``load_summary``), or None."""
    found = next((p for p in (path / "report" / "budgets.json", path / "budgets.json") if p.exists()), None)
    return None if found is None else json.loads(found.read_text())


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.4g}"


def write_claims(paths: Sequence[Path], out: Path) -> Path:
    """Check every claim on every comparison in ``paths``; write ``claims.md`` and ``claims.json``
    under ``out``; returns the markdown path.

    Raises:
        UserError: no path given, or one holds no summary.
    """
    if not paths:
        raise UserError("claims needs at least one comparison directory (a `compare` --out, or a report directory)")
    checks = [c for p in paths for c in check_domain(*load_summary(p), _load_budgets(Path(p)))]
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# The paper's claims, domain by domain",
        "",
        "Generated by `learn2adapt claims " + " ".join(str(p) for p in paths) + f" --out {out}` (module "
        "`learn2adapt.reporting.claims`). Verdicts: **supports** / **contradicts** when the 95% CI "
        "of the difference excludes 0 (positive = as the paper claims), otherwise within noise.",
        "",
    ]
    for number, text in CLAIMS.items():
        rows = [c for c in checks if c.claim == number]
        measured = [c for c in rows if c.verdict in ("supports", "contradicts", "within noise")]
        tally = {v: sum(c.verdict == v for c in measured) for v in ("supports", "contradicts", "within noise")}
        lines += [f"## {number}. {text}", ""]
        if not rows:
            lines += [
                "Not measured: no comparison has what this claim needs (for claim 4, MB and a schedule "
                "that switches the dynamics mid-episode).",
                "",
            ]
            continue
        lines += [
            f"{len(measured)} measured: supports {tally['supports']}, contradicts {tally['contradicts']}, "
            f"within noise {tally['within noise']}.",
            "",
            "| domain | schedule | difference | 95% CI | pairs | measure | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in rows:
            ci = "n/a" if not math.isfinite(c.ci95) else f"±{c.ci95:.3g}"
            lines.append(
                f"| {c.env.split('/')[-1].split('-v')[0]} | `{c.schedule}` | {c.comparison}: {_fmt(c.diff)} | {ci} | {c.pairs} | "
                f"{c.basis} | {c.verdict} |"
            )
        lines.append("")
    path = out / "claims.md"
    path.write_text("\n".join(lines))
    (out / "claims.json").write_text(json.dumps([asdict(c) for c in checks], indent=1) + "\n")
    return path
