"""The environments learn2adapt can make: its families, plugins, and any Gymnasium id.

- Every built-in family is registered under the ``learn2adapt/`` namespace with a lazy entry
  point, so importing the package does not import MuJoCo.
- A package of the user's adds families without editing ours: an entry point in the group
  :data:`PLUGIN_GROUP` names a :class:`Family` (or a list of them) whose environments implement
  :class:`~learn2adapt.envs.task_env.TaskEnv`; ``learn2adapt envs`` lists them and ``--env``
  finds them, and a preset file the family names is picked up (``Family.presets``).
- Any other id that ``gymnasium.make`` accepts (``Hopper-v5``, ``my_pkg.envs:Robot-v0``) is made
  by Gymnasium and wrapped in :class:`~learn2adapt.envs.gym_task_env.GymTaskEnv`: tasks from a
  declarative task space, or the nominal task alone.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import gymnasium as gym

from learn2adapt.envs.gym_task_env import LEARNED, GymTaskEnv
from learn2adapt.errors import ConfigError, UnknownName

NAMESPACE = "learn2adapt"
#: Entry-point group of environment plugins (``[project.entry-points."learn2adapt.envs"]``).
PLUGIN_GROUP = "learn2adapt.envs"


@dataclass(frozen=True)
class Family:
    """One registered environment family.

    Attributes:
        id: Gymnasium id (``learn2adapt/<Name>-v<k>``).
        entry_point: ``module:Class``.
        max_episode_steps: time limit applied by ``gym.make``.
        summary: one line for ``learn2adapt envs``.
        kwargs: default constructor arguments.
        presets: a plugin's preset file, ``package:file.toml`` (the format of our
            ``presets/<family>.toml``, resolved on ``_base.toml``); ``""``: the base protocols.
    """

    id: str
    entry_point: str
    max_episode_steps: int
    summary: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    presets: str = ""


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


@functools.cache
def plugin_families() -> tuple[Family, ...]:
    """The families that installed packages declare in the :data:`PLUGIN_GROUP` entry points."""
    out: list[Family] = []
    for point in sorted(metadata.entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        try:
            value = point.load()
        except Exception as e:  # noqa: BLE001  (a broken plugin must not break the others)
            raise ConfigError(f"environment plugin {point.name!r} ({point.value}) fails to load: {e}") from None
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items or not all(isinstance(f, Family) for f in items):
            raise ConfigError(
                f"environment plugin {point.name!r} ({point.value}) must name a learn2adapt.envs.Family or a list of them"
            )
        out += items
    return tuple(out)


def all_families() -> tuple[Family, ...]:
    """The built-in families, then the plugins'."""
    return FAMILIES + plugin_families()


def register_all() -> None:
    """Register every built-in family with Gymnasium (idempotent; plugins register when first used)."""
    _register(FAMILIES)


def _register(families: Sequence[Family]) -> None:
    for fam in families:
        if fam.id not in gym.registry:
            gym.register(
                id=fam.id, entry_point=fam.entry_point, max_episode_steps=fam.max_episode_steps, kwargs=dict(fam.kwargs)
            )


def registered_ids() -> list[str]:
    """Ids of every learn2adapt family (built-in and plugins), in catalog order."""
    return [fam.id for fam in all_families()]


def short_name(env_id: str) -> str:
    """``learn2adapt/HalfCheetahDisabledJoint-v0`` -> ``halfcheetahdisabledjoint``, ``pkg.mod:Robot-v0`` ->
    ``robot`` (run-directory names)."""
    return env_id.split("/")[-1].split(":")[-1].split("-v")[0].lower()


def find_family(env_id: str) -> Family | None:
    """The family (built-in or plugin) of ``env_id``, or ``None`` for any other Gymnasium id."""
    for fam in all_families():
        if fam.id == env_id:
            return fam
    return None


def family(env_id: str) -> Family:
    """The :class:`Family` of ``env_id``; :class:`UnknownName` listing the ids if it is not one."""
    fam = find_family(env_id)
    if fam is None:
        raise UnknownName(f"unknown environment {env_id!r}; available: {', '.join(registered_ids())}")
    return fam


def check_env_id(env_id: str) -> None:
    """Refuse, with a suggestion, an id that is neither a family nor one ``gymnasium.make`` knows.

    ``module:Name-v0`` imports ``module`` first (as ``gymnasium.make`` does), so a user's package
    registers its ids.
    """
    if find_family(env_id) is not None:
        return
    module, sep, name = env_id.rpartition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UnknownName(f"--env {env_id}: cannot import {module!r} ({e}); is its package installed?") from None
    if name in gym.registry:
        return
    known = list(dict.fromkeys(registered_ids() + list(gym.registry)))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.8)
    hint = f"did you mean {', '.join(close)}?" if close else f"ours: {', '.join(registered_ids())};"
    raise UnknownName(
        f"unknown environment {env_id!r}: {hint} any id gymnasium.make accepts works too "
        "(module:Name-v0 imports your package first)"
    )


def check_family_options(env_id: str, task_space: Sequence[str], reward: str, termination: str) -> None:
    """Refuse a task space or reward / termination functions for a family, which has its own tasks and exact
    reward (``"learned"`` is allowed: the run learns it, the environment is not involved)."""
    if find_family(env_id) is None:
        return
    options = (("task_space", task_space), ("reward", reward), ("termination", termination))
    given = [k for k, v in options if v and v != LEARNED]
    if given:
        raise ConfigError(
            f"{given[0]} is for Gymnasium environments without learn2adapt's tasks and batched reward; "
            f"{env_id} has both: leave {given[0]} unset" + ("" if given[0] == "task_space" else f" (or {LEARNED})")
        )


def make_env(
    env_id: str,
    schedule: str | None = None,
    *,
    task_space: Sequence[str] = (),
    reward: str = "",
    termination: str = "",
    **kwargs: Any,
) -> gym.Env:
    """``gym.make`` for a learn2adapt family, a plugin's or any Gymnasium id, optionally under a task schedule.

    Args:
        env_id: a family's id (see :func:`registered_ids`) or any id ``gymnasium.make`` accepts.
        schedule: a schedule spec such as ``"switch:t=500"`` (see
            :func:`learn2adapt.envs.schedules.list_schedules`); ``None``: no wrapper.
        task_space: for an environment that is not a family: its MuJoCo task space
            (:mod:`learn2adapt.envs.task_space`).
        reward, termination: for an environment that is not a family: ``module:function`` of
            its batched reward / termination; ``"learned"`` (any environment): none here, the
            run learns them (:mod:`learn2adapt.models.reward`).
        **kwargs: passed to ``gym.make`` (e.g. ``max_episode_steps``, ``render_mode``,
            constructor arguments).

    Raises:
        UnknownName: unknown id. ConfigError: options a family does not take, a bad task space
        or function, or an invalid schedule spec.
    """
    check_env_id(env_id)
    check_family_options(env_id, task_space, reward, termination)
    if find_family(env_id) is not None:
        _register(all_families())
        env = gym.make(env_id, **kwargs)
    else:
        env = GymTaskEnv(gym.make(env_id, **kwargs), task_space, reward, termination)
    if schedule is not None:
        from learn2adapt.envs.schedules import wrap_schedule

        env = wrap_schedule(env, schedule)
    return env


def describe_env(env_id: str, task_space: Sequence[str] = ()) -> dict[str, Any]:
    """Id, sizes, train/test tasks and schedules of a family, or of any Gymnasium id under its
    task space (none: the nominal task alone); builds the env once."""
    from learn2adapt.envs.schedules import schedules_for

    fam = find_family(env_id)
    env = make_env(env_id, task_space=task_space)
    try:
        base = env.unwrapped
        summary = (
            fam.summary
            if fam is not None
            else (
                f"Gymnasium environment, task space {', '.join(task_space)}"
                if task_space
                else "Gymnasium environment, no task space: its nominal task alone"
            )
        )
        spec = getattr(env, "spec", None)
        return {
            "id": env_id,
            "summary": summary,
            "obs_dim": int(env.observation_space.shape[0]),
            "act_dim": int(env.action_space.shape[0]),
            "max_episode_steps": fam.max_episode_steps if fam is not None else getattr(spec, "max_episode_steps", None),
            "train": base.list_tasks("train"),
            "test": base.list_tasks("test"),
            "schedules": schedules_for(env_id),
        }
    finally:
        env.close()


def describe_all() -> list[dict[str, Any]]:
    """:func:`describe_env` for every family, built-in and plugins (for ``learn2adapt envs``)."""
    return [describe_env(fam.id) for fam in all_families()]
