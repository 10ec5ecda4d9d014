"""The report's verdicts: which method did best under each schedule, by how much, and how sure.

Every sentence is computed from the methods' summaries (:class:`~learn2adapt.reporting.records.AlgoSummary`):
held-out returns are compared episode by episode, paired by (training seed, test task, episode
index), which fixes the initial state and the schedule
(:func:`~learn2adapt.evaluation.statistics.paired_diff_ci95`); the early post-switch reward per
step (one value per seed) by the difference of means with a Welch 95% interval
(:func:`~learn2adapt.evaluation.statistics.diff_ci95`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from learn2adapt.evaluation.statistics import diff_ci95, paired_diff_ci95, relative_change
from learn2adapt.reporting.records import RECOVERY_WINDOW, AlgoSummary, fmt_g
from learn2adapt.reporting.variants import label as display
from learn2adapt.reporting.variants import one_factor_pairs


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
