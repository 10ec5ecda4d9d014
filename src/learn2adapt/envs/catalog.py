"""The registered task families: Gymnasium registration, ``make_env`` and ``describe_all``.

Every family is registered under the ``learn2adapt/`` namespace with a lazy entry
point, so importing the package does not import MuJoCo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from learn2adapt.errors import UnknownName

NAMESPACE = "learn2adapt"


@dataclass(frozen=True)
class Family:
    """One registered environment family.

    Attributes:
        id: Gymnasium id (``learn2adapt/<Name>-v<k>``).
        entry_point: ``module:Class``.
        max_episode_steps: time limit applied by ``gym.make``.
        summary: one line for ``learn2adapt envs``.
        kwargs: default constructor arguments.
    """

    id: str
    entry_point: str
    max_episode_steps: int
    summary: str
    kwargs: dict[str, Any] = field(default_factory=dict)


_M = "learn2adapt.envs"
FAMILIES: tuple[Family, ...] = (
    Family(
        f"{NAMESPACE}/PendulumVaried-v0",
        f"{_M}.pendulum:PendulumVariedEnv",
        200,
        "Pendulum swing-up; mass and length scales vary",
    ),
    Family(
        f"{NAMESPACE}/CartPoleVaried-v0",
        f"{_M}.cartpole:CartPoleVariedEnv",
        200,
        "cart-pole balancing, continuous force; force gain and pole length vary",
    ),
    Family(
        f"{NAMESPACE}/HalfCheetahDisabledJoint-v0",
        f"{_M}.cheetah:HalfCheetahDisabledJointEnv",
        1000,
        "HalfCheetah with one disabled joint (paper): train joints 1-5, test joint 0",
    ),
    Family(
        f"{NAMESPACE}/AntCrippledLeg-v0",
        f"{_M}.ant:AntCrippledLegEnv",
        1000,
        "Ant with one crippled leg (paper): train legs 0-2, test leg 3",
    ),
    Family(
        f"{NAMESPACE}/HalfCheetahSlopes-v0",
        f"{_M}.slopes:HalfCheetahSlopesEnv",
        1000,
        "HalfCheetah on height-field slopes (paper): random ramps; test hill, basin, gentle, steep",
    ),
    Family(
        f"{NAMESPACE}/HalfCheetahPier-v0",
        f"{_M}.pier:HalfCheetahPierEnv",
        1000,
        "HalfCheetah on a pier of floating blocks with per-block damping (paper)",
    ),
    Family(
        f"{NAMESPACE}/HalfCheetahMassDamping-v0",
        f"{_M}.cheetah:HalfCheetahMassDampingEnv",
        1000,
        "HalfCheetah with scaled mass and damping (CaDM)",
    ),
    Family(
        f"{NAMESPACE}/CrippledHalfCheetah-v0",
        f"{_M}.cheetah:CrippledHalfCheetahEnv",
        1000,
        "HalfCheetah with crippled joints (CaDM): train joints 0-3, test 4, 5, both",
    ),
    Family(f"{NAMESPACE}/AntMass-v0", f"{_M}.ant:AntMassEnv", 1000, "Ant with scaled mass (CaDM)"),
    Family(
        f"{NAMESPACE}/SlimHumanoidMassDamping-v0",
        f"{_M}.humanoid:SlimHumanoidMassDampingEnv",
        1000,
        "Humanoid, reduced observation, scaled mass and damping (CaDM)",
    ),
    Family(f"{NAMESPACE}/HopperMass-v0", f"{_M}.hopper:HopperMassEnv", 1000, "Hopper with scaled mass (T-MCL)"),
)


def register_all() -> None:
    """Register every family with Gymnasium (idempotent)."""
    for fam in FAMILIES:
        if fam.id not in gym.registry:
            gym.register(
                id=fam.id, entry_point=fam.entry_point, max_episode_steps=fam.max_episode_steps, kwargs=dict(fam.kwargs)
            )


def registered_ids() -> list[str]:
    """Ids of every learn2adapt environment, in catalog order."""
    return [fam.id for fam in FAMILIES]


def short_name(env_id: str) -> str:
    """``learn2adapt/HalfCheetahDisabledJoint-v0`` -> ``halfcheetahdisabledjoint`` (run-directory names)."""
    return env_id.split("/")[-1].split("-v")[0].lower()


def family(env_id: str) -> Family:
    """The :class:`Family` of ``env_id``; ``ValueError`` listing the ids if unknown."""
    for fam in FAMILIES:
        if fam.id == env_id:
            return fam
    raise UnknownName(f"unknown environment {env_id!r}; available: {', '.join(registered_ids())}")


def make_env(env_id: str, schedule: str | None = None, **kwargs: Any) -> gym.Env:
    """``gym.make`` for a learn2adapt id, optionally wrapped in a task schedule.

    Args:
        env_id: a registered id (see :func:`registered_ids`).
        schedule: a schedule spec such as ``"switch:t=500"`` (see
            :func:`learn2adapt.envs.schedules.list_schedules`); ``None``: no wrapper.
        **kwargs: passed to ``gym.make`` (e.g. ``max_episode_steps``, ``render_mode``,
            constructor arguments).

    Raises:
        ValueError: unknown id, or invalid schedule spec.
    """
    family(env_id)
    register_all()
    env = gym.make(env_id, **kwargs)
    if schedule is not None:
        from learn2adapt.envs.schedules import wrap_schedule

        env = wrap_schedule(env, schedule)
    return env


def describe_family(env_id: str) -> dict[str, Any]:
    """Id, sizes, train/test tasks and schedules of one family (builds the env once)."""
    from learn2adapt.envs.schedules import schedules_for

    fam = family(env_id)
    env = make_env(env_id)
    try:
        base = env.unwrapped
        return {
            "id": fam.id,
            "summary": fam.summary,
            "obs_dim": int(env.observation_space.shape[0]),
            "act_dim": int(env.action_space.shape[0]),
            "max_episode_steps": fam.max_episode_steps,
            "train": base.list_tasks("train"),
            "test": base.list_tasks("test"),
            "schedules": schedules_for(env_id),
        }
    finally:
        env.close()


def describe_all() -> list[dict[str, Any]]:
    """:func:`describe_family` for every registered family (for ``learn2adapt envs``)."""
    return [describe_family(fam.id) for fam in FAMILIES]
