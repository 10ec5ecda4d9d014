"""The declarative MuJoCo task space and the Gymnasium adapter (learn2adapt.envs.task_space, gym_task_env)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from learn2adapt.envs import make_env
from learn2adapt.envs.task_space import parse_parameter
from learn2adapt.errors import ConfigError, UnknownName

HOPPER = "Hopper-v5"  # a Gymnasium MuJoCo id learn2adapt does not register
FIELDS = (
    "body_mass",
    "body_inertia",
    "dof_damping",
    "dof_armature",
    "actuator_gear",
    "actuator_ctrlrange",
    "geom_friction",
)


def _model(env) -> mujoco.MjModel:
    return env.unwrapped.env.unwrapped.model


def _snapshot(model: mujoco.MjModel) -> dict[str, bytes]:
    out = {name: getattr(model, name).tobytes() for name in FIELDS}
    out["gravity"] = model.opt.gravity.tobytes()
    return out


def _id(model: mujoco.MjModel, obj: mujoco.mjtObj, name: str) -> int:
    return int(mujoco.mj_name2id(model, obj, name))


def _changed(before: dict[str, bytes], model: mujoco.MjModel) -> set[str]:
    return {k for k, v in _snapshot(model).items() if v != before[k]}


# every kind changes exactly the fields, and the rows, it says ----------------------------------------
@pytest.mark.parametrize(
    ("spec", "value", "fields"),
    [
        ("mass:torso=0.5..1.5/2", 2.0, {"body_mass", "body_inertia"}),
        ("inertia:thigh=1/3", 3.0, {"body_inertia"}),
        ("damping:*thigh*=1/2", 2.0, {"dof_damping"}),
        ("armature:foot_joint=1/2", 2.0, {"dof_armature"}),
        ("gear:foot_joint=1/0", 0.0, {"actuator_gear"}),
        ("ctrlrange:leg_joint=0.8..1/0.2", 0.2, {"actuator_ctrlrange"}),
        ("friction:foot_geom=1/3", 3.0, {"geom_friction"}),
        ("gravity=0.9..1.1/0.5", 0.5, {"gravity"}),
    ],
)
def test_each_kind_edits_what_it_names(spec: str, value: float, fields: set[str]) -> None:
    env = make_env(HOPPER, task_space=[spec])
    model = _model(env)
    before = {k: np.frombuffer(v).copy() for k, v in _snapshot(model).items()}
    nominal = _snapshot(model)
    key = parse_parameter(spec).key
    env.unwrapped.set_task({key: value})
    assert _changed(nominal, model) == fields
    if spec.startswith("mass"):
        i = _id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        assert model.body_mass[i] == pytest.approx(value * before["body_mass"][i])
        others = np.delete(np.arange(model.nbody), i)
        assert np.array_equal(model.body_mass[others], before["body_mass"][others])
    if spec.startswith("gear"):  # Hopper's actuators are unnamed: they go by their joint's name
        assert model.actuator_gear[:, 0].tolist() == [200.0, 200.0, 0.0]
    if spec.startswith("friction"):  # the sliding coefficient only
        g = _id(model, mujoco.mjtObj.mjOBJ_GEOM, "foot_geom")
        assert model.geom_friction[g, 0] == pytest.approx(3.0 * before["geom_friction"].reshape(-1, 3)[g, 0])
        assert model.geom_friction[g, 1] == before["geom_friction"].reshape(-1, 3)[g, 1]
    if spec.startswith("gravity"):
        assert model.opt.gravity[2] == pytest.approx(-9.81 * 0.5)
    env.close()


def test_nominal_task_leaves_the_model_bit_identical() -> None:
    specs = ["mass:*=0.5..1.5/2", "damping:*=0.5..1.5/2", "gear:*=0.5..1/0", "friction:*=1/3", "gravity=1/0.5"]
    plain = make_env(HOPPER)
    env = make_env(HOPPER, task_space=specs)
    reference = _snapshot(_model(plain))
    assert _snapshot(_model(env)) == reference  # built with the nominal task
    base = env.unwrapped
    base.set_task(base.list_tasks("test")[0])
    assert _snapshot(_model(env)) != reference
    base.set_task(base.nominal_task())
    assert _snapshot(_model(env)) == reference
    plain.close()
    env.close()


def test_an_edit_changes_the_simulated_dynamics_mid_episode() -> None:
    """The same actions from the same state diverge as soon as a disabling task is set (next step)."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(12, 3))
    runs = []
    for switch in (False, True):
        env = make_env(HOPPER, task_space=["gear:*=1/0"])
        obs, _ = env.reset(seed=3)
        trace = [obs]
        for t, a in enumerate(actions):
            if switch and t == 6:
                env.unwrapped.set_task({"gear:*": 0.0})
            trace.append(env.step(a)[0])
        runs.append(np.array(trace))
        env.close()
    assert np.array_equal(runs[0][:7], runs[1][:7])
    assert not np.allclose(runs[0][8:], runs[1][8:])


def test_splits_sampling_and_listing() -> None:
    env = make_env(HOPPER, task_space=["mass:torso=0.5..1.5/1.7..2|0.2..0.3", "gear:foot_joint=1|0.5/0"])
    base = env.unwrapped
    test = base.list_tasks("test")
    assert {round(t["mass:torso"], 3) for t in test} == {1.85, 0.25} and {t["gear:foot_joint"] for t in test} == {0.0}
    assert len(base.list_tasks("train")) == 3 * 2
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = base.sample_task("train", rng)
        assert 0.5 <= t["mass:torso"] <= 1.5 and t["gear:foot_joint"] in (1.0, 0.5)
        h = base.sample_task("test", rng)
        assert 1.7 <= h["mass:torso"] <= 2 or 0.2 <= h["mass:torso"] <= 0.3
    obs, info = env.reset(seed=0)
    assert info["task"] == base.nominal_task() == {"mass:torso": 1.0, "gear:foot_joint": 1.0}
    env.close()


def test_no_task_space_is_the_nominal_task_alone() -> None:
    env = make_env(HOPPER)
    base = env.unwrapped
    assert base.list_tasks("train") == base.list_tasks("test") == [{}]
    _, info = env.reset(seed=0)
    assert env.step(env.action_space.sample())[4]["task"] == {}
    with pytest.raises(ValueError, match="no task space"):
        base.set_task({"mass:torso": 2.0})
    env.close()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("mass:tors=1/2", "its bodies: world, torso, thigh, leg, foot"),
        ("gear:knee=1/0", "its actuators: thigh_joint, leg_joint, foot_joint"),
        ("damping:nothing*=1/2", "no joint matching"),
        ("mass:torso=1..2/1.5", "overlaps the training range"),
        ("spin:torso=1/2", "unknown kind 'spin'"),
        ("gravity:x=1/2", "gravity takes no name pattern"),
        ("mass=1/2", "mass needs a name pattern"),
        ("mass:torso=1..2", "is not of the form"),
        ("mass:torso=a/2", "'a' is not a number"),
        ("mass:torso=1/-2", "finite and >= 0"),
        ("mass:torso=2..1/3", "runs backwards"),
    ],
)
def test_bad_task_spaces_name_the_problem(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        make_env(HOPPER, task_space=[spec])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="more than once"):
        make_env(HOPPER, task_space=["mass:torso=1/2", "mass:torso=0.5..1/2"])


def test_a_task_space_needs_a_mujoco_environment() -> None:
    with pytest.raises(ConfigError, match="not MuJoCo"):
        make_env("Pendulum-v1", task_space=["mass:pole=1/2"])


def test_a_family_takes_no_task_space() -> None:
    with pytest.raises(ConfigError, match="has both"):
        make_env("learn2adapt/PendulumVaried-v0", task_space=["gravity=1/2"])


def test_unknown_ids_get_a_suggestion() -> None:
    with pytest.raises(UnknownName, match="did you mean Hopper-v5"):
        make_env("Hoper-v5")
    with pytest.raises(UnknownName, match="cannot import 'no_such_package_x'"):
        make_env("no_such_package_x:Robot-v0")
