"""Family-specific behaviour: what each task changes in the simulator, and nothing else."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

import learn2adapt  # noqa: F401
from learn2adapt.envs import describe_all, make_env, registered_ids
from learn2adapt.envs.mujoco_base import EDITABLE_FIELDS, MARK_RGBA


def _next_obs(env, state: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The observation after ``action`` from the full simulator ``state`` (warm start included)."""
    mujoco.mj_setState(env.model, env.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    obs, *_ = env.step(action)
    return obs


def _start(env_id: str, task: dict, seed: int = 0):
    env = make_env(env_id).unwrapped
    env.set_task(task)
    env.reset(seed=seed)
    for _ in range(5):  # move off the initial pose so every joint is loaded
        env.step(env.action_space.sample())
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(env.model, spec))
    mujoco.mj_getState(env.model, env.data, state, spec)
    return env, state


@pytest.mark.parametrize(
    "env_id, task, dead",
    [
        ("learn2adapt/HalfCheetahDisabledJoint-v0", {"disabled": [0]}, [0]),
        ("learn2adapt/HalfCheetahDisabledJoint-v0", {"disabled": [3]}, [3]),
        ("learn2adapt/CrippledHalfCheetah-v0", {"disabled": [4, 5]}, [4, 5]),
    ],
)
def test_disabled_joint_action_has_no_effect(env_id: str, task: dict, dead: list[int]) -> None:
    env, state = _start(env_id, task)
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, 6).astype(np.float32)
    b = a.copy()
    b[dead] = -np.sign(a[dead])  # the disabled joints' commands flipped to the other extreme
    np.testing.assert_array_equal(_next_obs(env, state, a), _next_obs(env, state, b))
    live = [j for j in range(6) if j not in dead][0]
    c = a.copy()
    c[live] = -np.sign(a[live])
    assert not np.allclose(_next_obs(env, state, a), _next_obs(env, state, c))
    # The disabled joints are drawn red, the others are not.
    marked = {g for g in range(env.model.ngeom) if np.allclose(env.model.geom_rgba[g], MARK_RGBA)}
    assert marked == {g for j in dead for g in env.actuator_geoms(j)}


def test_crippled_leg_actuators_dead_and_leg_shrunk() -> None:
    env, state = _start("learn2adapt/AntCrippledLeg-v0", {"leg": 3})
    actuators = env._leg_actuators[3]
    assert sorted(env.model.joint(int(env.model.actuator_trnid[a, 0])).name for a in actuators) == ["ankle_4", "hip_4"]
    a = np.full(8, 0.5, dtype=np.float32)
    b = a.copy()
    b[actuators] = -1.0
    np.testing.assert_array_equal(_next_obs(env, state, a), _next_obs(env, state, b))
    c = a.copy()
    c[env._leg_actuators[0]] = -1.0
    assert not np.allclose(_next_obs(env, state, a), _next_obs(env, state, c))
    for g in env._leg_geoms[3]:
        np.testing.assert_allclose(env.model.geom_size[g, :2], env._nominal["geom_size"][g, :2] / 2)
    untouched = [g for g in range(env.model.ngeom) if g not in env._leg_geoms[3]]
    np.testing.assert_array_equal(env.model.geom_size[untouched], env._nominal["geom_size"][untouched])
    # Back to the intact ant: the model is exactly the nominal one again.
    env.set_task({"leg": None})
    for name in EDITABLE_FIELDS:
        np.testing.assert_array_equal(getattr(env.model, name), env._nominal[name])


def test_ant_observation_has_what_the_reward_needs() -> None:
    env, *_ = _start("learn2adapt/AntCrippledLeg-v0", {"leg": 0})
    obs, _, _, _, info = env.step(np.zeros(8, dtype=np.float32))
    assert obs.shape == (27,)
    assert obs[0] == pytest.approx(env.data.qpos[2]) and obs[13] == pytest.approx(env.data.qvel[0])
    assert info["reward_forward"] == pytest.approx(env.data.qvel[0])


@pytest.mark.parametrize(
    "env_id, task, damping",
    [
        ("learn2adapt/HalfCheetahMassDamping-v0", {"mass": 1.7, "damping": 0.3}, True),
        ("learn2adapt/AntMass-v0", {"mass": 0.3}, False),
        ("learn2adapt/HopperMass-v0", {"mass": 1.8}, False),
        ("learn2adapt/SlimHumanoidMassDamping-v0", {"mass": 0.45, "damping": 1.55}, True),
    ],
)
def test_scale_families_scale_exactly(env_id: str, task: dict, damping: bool) -> None:
    env = make_env(env_id).unwrapped
    env.set_task(task)
    np.testing.assert_allclose(env.model.body_mass, env._nominal["body_mass"] * task["mass"])
    np.testing.assert_allclose(env.model.body_inertia, env._nominal["body_inertia"] * task["mass"])
    expected = env._nominal["dof_damping"] * (task["damping"] if damping else 1.0)
    np.testing.assert_allclose(env.model.dof_damping, expected)
    env.set_task(env.nominal_task())
    np.testing.assert_array_equal(env.model.body_mass, env._nominal["body_mass"])


def test_slim_humanoid_observation_is_slim() -> None:
    env = make_env("learn2adapt/SlimHumanoidMassDamping-v0").unwrapped
    obs, _ = env.reset(seed=0)
    assert obs.shape == (env.model.nq - 2 + env.model.nv,) == (45,)
    np.testing.assert_allclose(obs, np.concatenate([env.data.qpos[2:], env.data.qvel]))


def test_slopes_profiles() -> None:
    env = make_env("learn2adapt/HalfCheetahSlopes-v0").unwrapped
    xs = np.linspace(-5, 100, 1000)
    h = {}
    for task in env.list_tasks("test") + [{"terrain": "flat"}]:
        env.set_task(task)
        h[task["terrain"]] = env.terrain_height(xs)
    assert np.all(h["flat"] == 0)
    for name in h:
        assert np.all(h[name][xs < 2] == 0)  # flat start under the robot
    assert h["hill"].max() > 1.5 and h["hill"].min() == 0 and h["hill"][-1] == 0
    assert h["basin"].min() < -1.5 and h["basin"].max() == 0
    for name in ("gentle", "steep"):  # series of up-ramps: never goes down
        assert np.all(np.diff(h[name]) >= -1e-9) and h[name][-1] > 2
    assert np.max(np.diff(h["steep"]) / np.diff(xs)) > 2 * np.max(np.diff(h["gentle"]) / np.diff(xs))
    env.set_task({"terrain": "random", "seed": 7})
    r7 = env.terrain_height(xs)
    slopes = np.sign(np.round(np.diff(r7), 9))
    assert (slopes > 0).any() and (slopes < 0).any()  # ramps of both signs
    env.set_task({"terrain": "random", "seed": 8})
    assert not np.allclose(env.terrain_height(xs), r7)
    # The simulator's height field holds the profile (data 0.25 is z = 0, see the XML).
    adr = env.model.hfield_adr[env._hfield]
    row = env.model.hfield_data[adr : adr + env.model.hfield_ncol[env._hfield]]
    np.testing.assert_allclose(-5 + 20 * row, env._heights, atol=1e-5)


def test_pier_blocks_unobserved_and_damping_per_task() -> None:
    from learn2adapt.envs.pier import N_BLOCKS, XML, pier_xml

    with open(XML) as f:
        assert f.read() == pier_xml(), "assets/half_cheetah_pier.xml is stale: regenerate with pier_xml()"
    env = make_env("learn2adapt/HalfCheetahPier-v0").unwrapped
    obs, _ = env.reset(seed=0)
    assert obs.shape == (17,) and env.model.nq == 9 + N_BLOCKS
    np.testing.assert_array_equal(env.data.qpos[9:], 0.0)  # blocks start at rest, deck level
    d = env.model.dof_damping[env._block_dofs]
    env.set_task({"pier": "random", "seed": 3})
    d3 = env.model.dof_damping[env._block_dofs].copy()
    assert d3.min() >= 0 and d3.max() <= 10 and d3.std() > 1
    env.set_task({"pier": "alternating"})
    np.testing.assert_array_equal(env.model.dof_damping[env._block_dofs][:4], [0, 10, 0, 10])
    np.testing.assert_array_equal(env.model.dof_damping[:9], env._nominal["dof_damping"][:9])  # robot untouched
    assert not np.array_equal(d, d3)


def test_bad_tasks_rejected() -> None:
    cases = {
        "learn2adapt/HalfCheetahDisabledJoint-v0": {"disabled": [6]},
        "learn2adapt/AntCrippledLeg-v0": {"leg": 4},
        "learn2adapt/HalfCheetahSlopes-v0": {"terrain": "cliff"},
        "learn2adapt/HalfCheetahPier-v0": {"pier": "random"},
        "learn2adapt/PendulumVaried-v0": {"mass": -1.0, "length": 1.0},
        "learn2adapt/HopperMass-v0": {"weight": 1.0},
    }
    for env_id, task in cases.items():
        with pytest.raises(ValueError):
            make_env(env_id).unwrapped.set_task(task)


def test_describe_all() -> None:
    rows = describe_all()
    assert [r["id"] for r in rows] == registered_ids()
    by_id = {r["id"]: r for r in rows}
    cheetah = by_id["learn2adapt/HalfCheetahDisabledJoint-v0"]
    assert (cheetah["obs_dim"], cheetah["act_dim"]) == (17, 6)
    assert cheetah["test"] == [{"disabled": [0]}] and len(cheetah["train"]) == 5
    assert "paper-cheetah-switch" in cheetah["schedules"]
    assert (by_id["learn2adapt/AntCrippledLeg-v0"]["obs_dim"], by_id["learn2adapt/AntCrippledLeg-v0"]["act_dim"]) == (
        27,
        8,
    )
    assert all(r["train"] and r["test"] and r["schedules"] for r in rows)
