"""Every model-based algorithm trains and evaluates on a GPU: tests of the ``gpu`` marker, skipped without CUDA.

On a machine with a CUDA build of torch: ``.venv/bin/python -m pytest -m gpu tests/e2e/test_gpu.py``
(a minute or two), then ``learn2adapt bench --device cuda`` for the figures. For one MuJoCo family
and one classic family, each model-based rule (and GrBAL with CEM in bf16) trains two MPC
iterations at tiny sizes with ``device=cuda`` and is evaluated on one held-out episode per task.
``LEARN2ADAPT_TEST_DEVICE=cpu`` runs the same checks on the CPU (or ``cuda:N`` on another card).
"""

import json
import math
import os

import pytest
import torch

from learn2adapt.adaptation import ALGORITHMS, MODEL_FREE
from tests.conftest import as_sets

DEVICE = os.environ.get("LEARN2ADAPT_TEST_DEVICE", "cuda")
FAMILIES = ("learn2adapt/HalfCheetahDisabledJoint-v0", "learn2adapt/PendulumVaried-v0")
TINY = [
    "iterations=2",
    "random_episodes=2",
    "episodes_per_iteration=2",
    "episode_length=60",
    "num_envs=2",
    "model.hidden=64x64",
    "fit.max_epochs=2",
    "planner.horizon=8",
    "planner.num_candidates=200",
    "adaptation.past=8",
    "adaptation.future=8",
    "adaptation.rnn_hidden=32",
    "eval.episodes_per_task=1",
    "eval.episode_length=60",
]
VARIANTS = [(algo, []) for algo in ALGORITHMS if algo not in MODEL_FREE] + [
    ("grbal", ["planner.name=cem", "planner.precision=bf16"])
]

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("env", FAMILIES, ids=lambda env: env.split("/")[-1])
@pytest.mark.parametrize("algo, extra", VARIANTS, ids=lambda v: "+".join(v) if isinstance(v, list) else v)
def test_every_algorithm_trains_and_evaluates_on_the_device(cli, tmp_path, env, algo, extra) -> None:
    run = tmp_path / "run"
    sets = as_sets([*TINY, f"device={DEVICE}", *extra], algo)
    code, _, err = cli("train", "--env", env, "--algo", algo, "--seed", "0", "--run-dir", run, "--quiet", *sets)
    assert code == 0, err
    code, _, err = cli("eval", run, "--quiet", "--episodes", "1")
    assert code == 0, err
    assert math.isfinite(json.loads((run / "eval.json").read_text())["mean"])
