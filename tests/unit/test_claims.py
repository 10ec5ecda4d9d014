"""The claims checker: verdicts follow the sign and the confidence interval of each difference."""

from __future__ import annotations

import math

from learn2adapt.reporting.claims import check_domain, verdict


def _row(returns: list[float], before: list[float], after: list[float], early=None, pre=None) -> dict:
    n = len(before)
    nan = [math.nan] * n
    return {
        "seeds": list(range(n)),
        "episodes": [[i % n, 0, i // n, r] for i, r in enumerate(returns)],
        "per_seed": {
            "pred_error_before": before,
            "pred_error_after": after,
            "early_recovery": early or nan,
            "pre_switch": pre or nan,
        },  # fmt: skip
    }


def test_verdicts_read_the_sign_and_the_interval():
    assert verdict(2.0, 1.0, 5) == "supports"
    assert verdict(-2.0, 1.0, 5) == "contradicts"
    assert verdict(0.5, 1.0, 5) == "within noise"
    assert verdict(math.nan, math.nan, 0) == "not measured"
    assert verdict(1.0, math.nan, 1) == "too few samples"


def test_each_claim_is_paired_and_signed_as_the_paper_states_it():
    summary = {
        "switch": {
            # GrBAL leads MB by ~100 every episode; MB+DE leads GrBAL by ~50: claim 1 holds, claim 2 fails.
            "grbal": _row(
                [100.0 + k for k in range(6)], [1.0, 1.1, 0.9], [0.5, 0.6, 0.4], [2.0, 2.1, 1.9], [1.0, 1.0, 1.0]
            ),
            "mb": _row([0.0 + 2 * k for k in range(6)], [1.0] * 3, [1.0] * 3, [0.0, 0.1, 0.0], [1.0, 0.9, 1.0]),
            "mbde": _row([150.0 + k for k in range(6)], [1.0] * 3, [0.9] * 3),
        },
        "verdict": ["ignored"],
        "meta": {"env": "learn2adapt/Test-v0"},
    }
    checks = {(c.claim, c.comparison.split(":")[0]): c for c in check_domain("learn2adapt/Test-v0", summary)}
    assert checks[(1, "GrBAL - MB")].verdict == "supports" and checks[(1, "GrBAL - MB")].pairs == 6
    assert checks[(2, "GrBAL - MB+DE")].verdict == "contradicts"
    assert checks[(3, "GrBAL")].verdict == "supports" and checks[(3, "GrBAL")].pairs == 3
    # The lead after the switch (~2) exceeds the lead before it (~0): claim 4 holds.
    four = checks[(4, "GrBAL - MB")]
    assert four.verdict == "supports" and math.isclose(four.diff, (2.0 + 1.9 + 1.9) / 3, rel_tol=1e-9)
    assert checks[(1, "ReBAL - MB")].verdict == "not measured"  # not in this comparison


def test_equal_samples_against_sac_per_planner_and_only_at_equal_steps():
    """Claim 5 pairs each adaptive entry with SAC per episode, per planner it was evaluated with,
    and refuses a verdict when the two were trained on different numbers of steps."""
    cem = _row([300.0 + k for k in range(6)], [1.0] * 3, [0.8] * 3)
    rs = _row([10.0 + k for k in range(6)], [1.0] * 3, [0.9] * 3)
    sac = _row([100.0 + 3 * k for k in range(6)], [math.nan] * 3, [math.nan] * 3)
    for row in (cem, rs, sac):
        row["env_steps"] = 48000.0
    mb_cem = _row([50.0] * 6, [1.0] * 3, [1.0] * 3)
    summary = {"fixed": {"grbal@rs": rs, "grbal@cem": cem, "mb@cem": mb_cem, "sac": sac}, "meta": {}}
    checks = {(c.claim, c.comparison): c for c in check_domain("learn2adapt/Test-v0", summary)}
    assert checks[(5, "GrBAL (CEM) - SAC")].verdict == "supports"
    assert checks[(5, "GrBAL (RS) - SAC")].verdict == "contradicts"
    assert checks[(5, "GrBAL (CEM) - SAC")].pairs == 6
    assert checks[(1, "GrBAL (CEM) - MB (CEM)")].verdict == "supports"  # against MB with the same planner
    assert checks[(1, "GrBAL (RS) - MB (RS)")].verdict == "not measured"
    sac["env_steps"] = 24000.0
    unequal = {(c.claim, c.comparison): c for c in check_domain("learn2adapt/Test-v0", summary)}
    assert unequal[(5, "GrBAL (CEM) - SAC")].verdict == "not measured"


def test_equal_samples_at_every_budget_the_comparison_evaluated():
    """With ``budgets.json`` (``compare --at-steps``), claim 5 has one row per step count, read from
    its paired differences, and no verdict where the two entries' actual steps differ."""
    sac = _row([0.0] * 6, [math.nan] * 3, [math.nan] * 3)
    cem = _row([1.0] * 6, [1.0] * 3, [0.9] * 3)
    summary = {"fixed": {"grbal@cem": cem, "sac": sac}, "meta": {}}
    budgets = {
        "steps": [12000, 24000, 48000],
        "schedules": {
            "fixed": {
                "actual_steps": {"grbal@cem": [12000, 24000, 48000], "sac": [12000, 30000, 48000]},
                "differences": {"grbal@cem - sac": [[175.0, 38.0, 9], [220.0, 130.0, 9], [-25.0, 222.0, 9]]},
            }
        },
    }
    rows = [c for c in check_domain("learn2adapt/Test-v0", summary, budgets) if c.claim == 5]
    assert [c.verdict for c in rows] == ["supports", "not measured", "within noise"]
    assert rows[0].basis == "return at 12000 steps, paired by episode" and rows[0].diff == 175.0
