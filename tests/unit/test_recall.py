"""Recall measures: first visit vs revisit after switches, and a mixture's assignment against the truth."""

import numpy as np
import pytest

from learn2adapt.data.trajectory_buffer import Episode
from learn2adapt.evaluation.protocol import RECALL_SETTLE, RECALL_WINDOW, recall_measures
from learn2adapt.evaluation.statistics import adjusted_rand_index

A, B = {"mass": 1.0}, {"mass": 2.0}


def test_adjusted_rand_index() -> None:
    truth = ["a"] * 5 + ["b"] * 5
    assert adjusted_rand_index(truth, [7] * 5 + [3] * 5) == pytest.approx(1.0)  # labels do not matter
    assert adjusted_rand_index(truth, [0] * 10) == pytest.approx(0.0)  # one cluster: chance level
    rng = np.random.default_rng(0)
    many = list(rng.integers(0, 2, 2000))
    assert abs(adjusted_rand_index(many, list(rng.integers(0, 2, 2000)))) < 0.02


def _episode(blocks: list[tuple[dict, float]], length: int) -> Episode:
    tasks = [task for task, _ in blocks for _ in range(length)]
    reward = np.array([r for _, r in blocks for _ in range(length)], np.float32)
    n = len(tasks)
    z = np.zeros((n, 1), np.float32)
    return Episode(z, z, z, reward, np.zeros(n, bool), tasks)


def test_first_visits_and_revisits_are_told_apart() -> None:
    # A, B, A, B: the switch to B at 60 is a first visit, to A at 120 and B at 180 revisits.
    ep = _episode([(A, 0.0), (B, 1.0), (A, 2.0), (B, 3.0)], 60)
    recall = recall_measures([ep])
    assert (recall.first_visits, recall.revisits) == (1, 2)
    assert recall.first_visit_reward == pytest.approx(1.0)
    assert recall.revisit_reward == pytest.approx(2.5)  # RECALL_WINDOW steps of 2.0 and of 3.0
    assert RECALL_WINDOW <= 60
    assert recall_measures([_episode([(A, 0.0)], 60)]) is None  # no switch, nothing to say
    assert np.isnan(recall.ari)  # not a mixture rule


def test_mixture_assignment_purity_and_ari() -> None:
    ep = _episode([(A, 0.0), (B, 1.0), (A, 2.0), (B, 3.0)], 60)
    perfect = [(0 if t["mass"] == 1.0 else 1, 2) for t in ep.tasks]
    one_model = [(0, 1)] * len(ep)
    good = recall_measures([ep], [perfect])
    assert good.purity == pytest.approx(1.0) and good.ari == pytest.approx(1.0) and good.mean_models == 2
    bad = recall_measures([ep], [one_model])
    assert bad.purity == pytest.approx(0.5) and bad.ari == pytest.approx(0.0) and bad.mean_models == 1


C = {"mass": 3.0}


def test_revisit_gain_pairs_revisits_with_first_visits_within_each_episode() -> None:
    # Episode 1: B's first visit earns 1, the revisits of A and B 2 and 3: gain 2.5 - 1.
    # Episode 2: the first visits of B and C earn 0, A's revisit 1: gain 1. Episode 3 has no revisit.
    eps = [
        _episode([(A, 0.0), (B, 1.0), (A, 2.0), (B, 3.0)], 60),
        _episode([(A, 5.0), (B, 0.0), (C, 0.0), (A, 1.0)], 60),
        _episode([(A, 0.0), (B, 1.0)], 60),
    ]
    recall = recall_measures(eps)
    assert recall.episode_gains[:2] == pytest.approx([1.5, 1.0]) and np.isnan(recall.episode_gains[2])
    assert recall.revisit_gain == pytest.approx(1.25)
    assert recall.revisit_gain_ci95 > 0


def test_recall_rate_counts_revisit_steps_planned_with_the_first_visits_model() -> None:
    ep = _episode([(A, 0.0), (B, 1.0), (A, 2.0), (B, 3.0)], 60)
    # Model 7 holds A, model 3 holds B's first visit; on B's revisit a new model 9 plans from step 30 of 60.
    steps = [7] * 60 + [3] * 60 + [7] * 60 + [3] * 30 + [9] * 30
    recall = recall_measures([ep], [[(m, 3) for m in steps]])
    counted = 2 * (60 - RECALL_SETTLE)  # the revisits of A and of B, less their first steps
    assert recall.recall_rate == pytest.approx((counted - 30) / counted)
    assert recall.models_per_task == pytest.approx(3 / 2)  # 3 models held at the end, 2 tasks
    exact = recall_measures([ep], [[(0 if t["mass"] == 1.0 else 1, 2) for t in ep.tasks]])
    assert exact.recall_rate == 1.0 and exact.models_per_task == 1.0
