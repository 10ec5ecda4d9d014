"""The tables of ``learn2adapt compare-online``: return per rule, recall measures, paired differences."""

import math

import pytest

from learn2adapt.reporting.online_rules import eval_file, schedule_slug, summarise


def _result(returns: list[list[float]], recall: dict | None = None) -> dict:
    """An ``eval.json`` dict: one entry per test task with its episodes' returns."""
    tasks = [{"task": {"mass": 1.0 + i}, "returns": r} for i, r in enumerate(returns)]
    mean = sum(sum(r) for r in returns) / sum(len(r) for r in returns)
    return {"mean": mean, "tasks": tasks, **({"recall": recall} if recall else {})}


def test_eval_files_are_named_after_run_rule_and_schedule(tmp_path) -> None:
    assert schedule_slug("recurring:period=50,tasks=3") == "recurring-period-50-tasks-3"
    assert eval_file(tmp_path, "grbal-s0", "mole", "fixed") == tmp_path / "grbal-s0-mole-fixed.json"


def test_each_rule_is_a_row_and_is_paired_with_the_reference_by_episode_and_by_run() -> None:
    results = {
        "fixed": {
            "grbal": {"s0": _result([[10.0, 12.0], [20.0, 22.0]]), "s1": _result([[14.0, 16.0], [24.0, 26.0]])},
            "mole": {"s0": _result([[11.0, 13.0], [21.0, 23.0]]), "s1": _result([[15.0, 17.0], [25.0, 27.0]])},
        }
    }
    text, summary = summarise(results, ["grbal", "mole"])
    lines = text.splitlines()
    assert lines[0] == "## `fixed`"
    assert lines[2] == "| rule | held-out return (mean ± 95% CI over runs) | per run |"  # no recall measured
    assert lines[4].startswith("| grbal | 18.0 ± ") and lines[4].endswith("| 16.0 / 20.0 |")
    assert lines[5].startswith("| mole | 19.0 ± ") and lines[5].endswith("| 17.0 / 21.0 |")
    # Every one of the 8 episodes (2 runs x 2 tasks x 2 episodes) is 1 higher under MOLe: no spread.
    assert "mole - grbal: +1.0 ± 0.0 paired by episode (8 pairs; higher); +1.0 ± 0.0 paired by run (2 runs)." in text
    assert summary["fixed"]["grbal"]["per_run"] == {"s0": 16.0, "s1": 20.0}
    assert summary["fixed"]["mole-grbal"]["by_episode"] == {"diff": 1.0, "ci95": 0.0, "pairs": 8}
    assert summary["fixed"]["mole-grbal"]["by_run"]["pairs"] == 2
    assert "revisit_gain" not in summary["fixed"]["mole-grbal"]


def test_recall_measures_are_tabled_where_an_evaluation_measured_them() -> None:
    recall = {"first_visit_reward": -2.0, "revisit_reward": -1.0, "recall_rate": 0.5, "models_per_task": 1.5}
    mole = {**recall, "purity": 0.75, "ari": 0.25, "episode_gains": [1.0, 3.0]}
    results = {
        "recurring:period=50": {
            "grbal": {"s0": _result([[10.0, 12.0]], {**recall, "episode_gains": [0.0, 1.0]})},
            "mole": {"s0": _result([[10.0, 12.0]], mole)},
        }
    }
    text, summary = summarise(results, ["grbal", "mole"])
    head = text.splitlines()[2]
    assert head.endswith("| recall rate | models per task | purity | ARI |")
    row = summary["recurring:period=50"]["mole"]
    assert row["revisit_gain"] == pytest.approx(2.0) and row["purity"] == 0.75 and row["recall_rate"] == 0.5
    assert summary["recurring:period=50"]["grbal"]["purity"] is None  # GrBAL holds no mixture
    assert "| grbal |" in text and " - | - |" in text.splitlines()[4]  # its purity and ARI: no value
    gain = summary["recurring:period=50"]["mole-grbal"]["revisit_gain"]
    assert gain["diff"] == pytest.approx(1.5) and gain["pairs"] == 2
    assert "revisit gain, mole - grbal: +1.50 ± " in text
    assert "within noise" in text and math.isnan(summary["recurring:period=50"]["mole-grbal"]["by_run"]["ci95"])
