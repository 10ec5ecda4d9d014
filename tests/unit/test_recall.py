"""Recall measures: first visit vs revisit after switches, and a mixture's assignment against the truth."""

import numpy as np
import pytest

from learn2adapt.data.trajectory_buffer import Episode
from learn2adapt.experiments.evaluation import RECALL_WINDOW, recall_measures
from learn2adapt.experiments.statistics import adjusted_rand_index

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
