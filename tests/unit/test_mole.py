"""MOLe: the online mixture remembers tasks, assigns steps to them, and stays within its bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from learn2adapt.adaptation.config import AdaptationConfig, MixtureConfig
from learn2adapt.adaptation.grbal import GrBAL
from learn2adapt.adaptation.mole import MOLe, OracleIdentityMixture
from learn2adapt.data.recent_history import RecentHistory
from learn2adapt.evaluation.protocol import recall_measures
from learn2adapt.models.config import FitConfig, ModelConfig
from tests.synthetic_tasks import LinearTaskFamily

M = 16
BLOCK = 50  # steps between switches


@pytest.fixture(scope="module")
def trained() -> tuple[LinearTaskFamily, GrBAL]:
    """GrBAL meta-trained on the synthetic family (as in test_grbal's adaptation test)."""
    torch.set_num_threads(1)
    fam = LinearTaskFamily()
    buf = fam.make_buffer(200, 60, np.random.default_rng(0))
    torch.manual_seed(0)
    adapt = AdaptationConfig(past=M, future=M, inner_lr=0.1, step_size="scalar")
    fit = FitConfig(max_epochs=15, patience=4, max_steps_per_epoch=100, segment_epoch="starts")
    rule = GrBAL(fam.obs_dim, fam.act_dim, ModelConfig(hidden=[64, 64]), fit, adapt)
    rule.fit(buf, np.random.default_rng(0), progress=False)
    return fam, rule


def _mole(rule: GrBAL, kind: type[MOLe] = MOLe, **mixture) -> MOLe:
    cfg = AdaptationConfig(past=M, future=M, inner_lr=0.1, step_size="scalar", mixture=MixtureConfig(**mixture))
    mole = kind(rule.obs_dim, rule.act_dim, ModelConfig(hidden=[64, 64]), rule.fit_cfg, cfg)
    mole.load_state_dict(rule.state_dict())
    return mole


def _run(fam: LinearTaskFamily, rule, tasks, steps: int, seed: int = 3, nan_at: int | None = None, order=None):
    """Feed one environment's transitions step by step; per step: (MAP model, models held, one-step error).

    ``order``: the task of each block (indices into ``tasks``); default: ``tasks`` in turn.
    """
    order = order or [b % len(tasks) for b in range(steps // BLOCK + 1)]
    schedule = [tasks[order[t // BLOCK]] for t in range(steps)]
    ep = fam.episode(schedule, steps, np.random.default_rng(seed))
    state = rule.online_state(1) if isinstance(rule, MOLe) else None
    now = [0]
    if isinstance(rule, OracleIdentityMixture):  # told the task of the newest transition
        state.task_source = lambda: [json.dumps(schedule[max(now[0] - 1, 0)], sort_keys=True)]
    hist = RecentHistory(1, M, fam.obs_dim, fam.act_dim)
    slots, models, errors = [], [], []
    for t in range(steps):
        now[0] = t
        predict = state.predictor(hist.data) if state is not None else rule.predictor(hist.data)
        o, a, n = (torch.as_tensor(x[t : t + 1]) for x in (ep.obs, ep.act, ep.next_obs))
        with torch.no_grad():
            err = ((predict(o[None], a[None])[0] - n) / rule.normalizer.delta_std).pow(2).mean()
        errors.append(float(err))
        if state is not None:
            slots.append(int(state.assignment[0]))
            models.append(int(state.num_models[0]))
        if t == nan_at:
            o = o * float("nan")
        hist.push(o, a, n)
    return np.array(slots), np.array(models), np.array(errors), state


def _recall(fam, rule, tasks, order, seed: int = 3):
    """The evaluation's recall measures of one episode, and its one-step errors."""
    steps = len(order) * BLOCK
    slots, models, errors, _ = _run(fam, rule, tasks, steps, seed=seed, order=order)
    schedule = [tasks[order[t // BLOCK]] for t in range(steps)]
    ep = fam.episode(schedule, steps, np.random.default_rng(seed))
    return recall_measures([ep], [list(zip(slots.tolist(), models.tolist()))]), errors


#: Two tasks a single model cannot follow quickly: opposite drifts and action signs.
A = {"drift": 0.5, "gain": [1.0, -1.0]}
B = {"drift": -0.5, "gain": [-1.0, 1.0]}


def test_two_alternating_tasks_are_recalled_on_revisits(trained) -> None:
    fam, grbal = trained
    mole = _mole(grbal)  # the default mixture options
    steps = 8 * BLOCK
    slots, models, errors, _ = _run(fam, mole, [A, B], steps)
    _, _, grbal_errors, _ = _run(fam, grbal, [A, B], steps)
    # One model per task, not one per switch: a model made from a window straddling a switch
    # is provisional and dropped within a few steps.
    assert models[-1] == 2 and (models[2 * BLOCK :] == 2).mean() >= 0.95, models[::5]
    # After the first visit of each task, >= 90% of steps go to that task's model.
    truth = (np.arange(steps) // BLOCK) % 2
    after = np.arange(steps) >= 2 * BLOCK
    slot_of = {task: np.bincount(slots[after & (truth == task)]).argmax() for task in (0, 1)}
    assert slot_of[0] != slot_of[1]
    right = slots[after] == np.where(truth[after] == 0, slot_of[0], slot_of[1])
    assert right.mean() >= 0.9, right.mean()
    # Right after a revisit the remembered model predicts better than GrBAL, which starts over.
    revisits = [s for s in range(2 * BLOCK, steps, BLOCK)]
    window = np.concatenate([np.arange(s + 2, s + 12) for s in revisits])
    assert errors[window].mean() < grbal_errors[window].mean(), (errors[window].mean(), grbal_errors[window].mean())


def test_the_number_of_models_never_exceeds_the_cap(trained) -> None:
    fam, grbal = trained
    tasks = fam.make_test_tasks(4, seed=11)
    mole = _mole(grbal, recent=4, max_models=2)
    _, models, errors, state = _run(fam, mole, tasks, 6 * BLOCK)
    assert models.max() == 2 and np.isfinite(errors).all()
    assert bool(torch.isfinite(state.counts).all())


def test_one_model_is_continued_adaptation(trained) -> None:
    fam, grbal = trained
    mole = _mole(grbal, max_models=1)
    _, models, _, state = _run(fam, mole, fam.make_test_tasks(1), 60)
    assert models.max() == 1
    theta = grbal.model.params()
    moved = [not torch.equal(state.params[k][0, 0], theta[k]) for k in theta]
    assert all(moved)  # its gradient steps were kept from step to step


def test_a_nan_transition_corrupts_no_model(trained) -> None:
    fam, grbal = trained
    mole = _mole(grbal, recent=4)
    _, _, errors, state = _run(fam, mole, fam.make_test_tasks(2, seed=7), 3 * BLOCK, nan_at=20)
    assert all(bool(torch.isfinite(v).all()) for v in state.params.values())
    assert np.isfinite(errors[30:]).all()  # once the NaN left the window, predictions are finite again


def test_a_grbal_checkpoint_is_evaluated_with_the_mixture(trained) -> None:
    _, grbal = trained
    mole = _mole(grbal)
    for k, v in grbal.module.state_dict().items():
        assert torch.equal(v, mole.module.state_dict()[k]), k
    assert float(mole.calibration.post_adapt_mse) > 0  # the fit stored the likelihood's variance


def test_unused_slots_change_nothing(trained) -> None:
    """Only the slots in use are computed: a larger cap that is never reached gives the same steps."""
    fam, grbal = trained
    runs = [_run(fam, _mole(grbal, max_models=cap), [A, B], 4 * BLOCK) for cap in (4, 8)]
    (slots4, models4, errors4, _), (slots8, models8, errors8, _) = runs
    assert models4.max() < 4  # the smaller cap was never reached either
    np.testing.assert_array_equal(slots4, slots8)
    np.testing.assert_array_equal(models4, models8)
    np.testing.assert_allclose(errors4, errors8, rtol=1e-5)


#: A third task, far from A and B: the drift of neither, the action signs of both mixed.
C = {"drift": 0.0, "gain": [1.0, 1.0]}
#: Unequal visits in no fixed order, each task coming back (in blocks of BLOCK steps).
ORDER = [0, 1, 1, 0, 2, 1, 0, 0, 2, 1]


def test_the_oracle_identity_mixture_recalls_each_task_exactly(trained) -> None:
    fam, grbal = trained
    recall, errors = _recall(fam, _mole(grbal, OracleIdentityMixture), [A, B, C], ORDER)
    assert recall.recall_rate == 1.0 and recall.models_per_task == 1.0
    # Wrong only at the switch steps: that plan is made before a transition of the new task arrives.
    switches = sum(a != b for a, b in zip(ORDER, ORDER[1:]))
    assert recall.purity == pytest.approx(1 - switches / (len(ORDER) * BLOCK))
    _, _, grbal_errors, _ = _run(fam, grbal, [A, B, C], len(ORDER) * BLOCK, order=ORDER)
    assert errors[3 * BLOCK :].mean() < grbal_errors[3 * BLOCK :].mean()  # continued adaptation, recalled


def test_the_oracle_identity_mixture_is_evaluation_only(trained) -> None:
    _, grbal = trained
    state = _mole(grbal, OracleIdentityMixture).online_state(1)
    hist = RecentHistory(1, M, grbal.obs_dim, grbal.act_dim)
    hist.push(torch.zeros(1, grbal.obs_dim), torch.zeros(1, grbal.act_dim), torch.zeros(1, grbal.obs_dim))
    with pytest.raises(ValueError, match="evaluation only"):
        state.predictor(hist.data)


def test_mole_recalls_clearly_separable_tasks(trained) -> None:
    fam, grbal = trained
    recall, _ = _recall(fam, _mole(grbal), [A, B, C], ORDER)
    assert recall.recall_rate >= 0.95, recall
    assert 0.9 <= recall.models_per_task <= 1.5, recall
    assert recall.purity >= 0.9, recall
