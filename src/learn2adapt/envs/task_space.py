"""A declarative task space over any compiled MuJoCo model: tasks for a robot with no code.

A task space is a list of *parameters*, each a scale of nominal values of the compiled
``MjModel``, written as one string::

    KIND[:PATTERN]=TRAIN/TEST

- ``KIND`` is what the scale multiplies (:data:`KINDS`): ``mass`` (a body's mass and inertia
  together: a denser or lighter part), ``inertia`` (its inertia alone), ``damping`` and
  ``armature`` (of a joint's degrees of freedom), ``gear`` (an actuator's gear: 0 disables it,
  0.5 halves its torque), ``ctrlrange`` (an actuator's control range: a weakened joint whose
  commands saturate sooner), ``friction`` (a geom's sliding friction) and ``gravity``.
- ``PATTERN`` selects names of bodies, joints, actuators or geoms (Unix shell globs:
  ``torso``, ``*thigh*``, ``*``; an unnamed actuator goes by its joint's name); ``gravity`` takes none. A pattern matching no name is refused
  with the names the model has.
- ``TRAIN`` is an interval ``lo..hi`` or a set of values ``a|b|c`` (one value is a set of one).
- ``TEST`` is one or more held-out values or intervals joined by ``|`` (``0``, ``1.6..2|0.2..0.4``),
  each disjoint from the training range.

For example ``gear:bthigh=1/0`` trains on the intact robot and tests with the back thigh
disabled, and ``mass:torso=0.5..1.5/1.7..2.0`` holds out heavier torsos. Parameters combine as
independent factors (:class:`~learn2adapt.envs.param_space.ParamSpace`): a task is
``{"mass:torso": 1.2, "gravity": 1.0, ...}`` (keyed by ``KIND[:PATTERN]``), sampled per split, listed as the training grid and the test
intervals' combinations; the nominal task (every scale 1) leaves the model bit-identical.
Edits are written from cached nominal copies into the live model at ``set_task``, so they take
effect at the next step, mid-episode and under schedules included.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from learn2adapt.envs.param_space import ParamSpace, ScaleParam
from learn2adapt.envs.task_env import Task
from learn2adapt.errors import ConfigError

#: Kind -> (MuJoCo object type its pattern names, the model fields it scales).
KINDS: dict[str, tuple[mujoco.mjtObj | None, tuple[str, ...]]] = {
    "mass": (mujoco.mjtObj.mjOBJ_BODY, ("body_mass", "body_inertia")),
    "inertia": (mujoco.mjtObj.mjOBJ_BODY, ("body_inertia",)),
    "damping": (mujoco.mjtObj.mjOBJ_JOINT, ("dof_damping",)),
    "armature": (mujoco.mjtObj.mjOBJ_JOINT, ("dof_armature",)),
    "gear": (mujoco.mjtObj.mjOBJ_ACTUATOR, ("actuator_gear",)),
    "ctrlrange": (mujoco.mjtObj.mjOBJ_ACTUATOR, ("actuator_ctrlrange",)),
    "friction": (mujoco.mjtObj.mjOBJ_GEOM, ("geom_friction",)),
    "gravity": (None, ("opt.gravity",)),
}
_SPEC = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<pattern>[^=]+))?=(?P<train>[^/]+)/(?P<test>.+)$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_INTERVAL = re.compile(rf"^({_NUMBER})\.\.({_NUMBER})$")

#: How a spec is written, for error messages.
SPEC_FORM = "KIND[:PATTERN]=TRAIN/TEST, e.g. mass:torso=0.5..1.5/1.7..2 or gear:bthigh=1/0"


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"task space {spec!r}: {text!r} is not a number ({SPEC_FORM})") from None
    if not np.isfinite(value) or value < 0:
        raise ConfigError(f"task space {spec!r}: scales must be finite and >= 0 (got {text})")
    return value


def _ranges(text: str, spec: str) -> list[tuple[float, float]]:
    """``"a..b|c"`` -> ``[(a, b), (c, c)]``."""
    out = []
    for part in text.split("|"):
        m = _INTERVAL.match(part.strip())
        lo, hi = (m.group(1), m.group(2)) if m else (part, part)
        a, b = _number(lo, spec), _number(hi, spec)
        if a > b:
            raise ConfigError(f"task space {spec!r}: interval {part!r} runs backwards")
        out.append((a, b))
    return out


@dataclass(frozen=True)
class TaskParameter:
    """One parsed parameter of a task space.

    Attributes:
        spec: the string it was written as.
        key: ``KIND[:PATTERN]``, the key of its value in a task.
        kind: a key of :data:`KINDS`.
        pattern: the glob over names (``""`` for gravity).
        scale: its train and test ranges (nominal 1).
    """

    spec: str
    key: str
    kind: str
    pattern: str
    scale: ScaleParam


def parse_parameter(spec: str) -> TaskParameter:
    """Parse one ``KIND[:PATTERN]=TRAIN/TEST`` string (model-independent checks only)."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise ConfigError(f"task space {spec!r} is not of the form {SPEC_FORM}")
    kind, pattern = m.group("kind"), (m.group("pattern") or "").strip()
    if kind not in KINDS:
        raise ConfigError(f"task space {spec!r}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if (KINDS[kind][0] is None) != (not pattern):
        raise ConfigError(
            f"task space {spec!r}: "
            + ("gravity takes no name pattern" if pattern else f"{kind} needs a name pattern, e.g. {kind}:*")
        )
    train = _ranges(m.group("train"), spec)
    discrete = len(train) > 1 or train[0][0] == train[0][1]
    values = tuple(lo for lo, _ in train) if discrete else train[0]
    key = f"{kind}:{pattern}" if pattern else kind
    try:
        scale = ScaleParam(key, values, tuple(_ranges(m.group("test"), spec)), discrete, positive=False)
    except ValueError as e:
        raise ConfigError(f"task space {spec!r}: {e}") from None
    return TaskParameter(spec.strip(), key, kind, pattern, scale)


def parse_task_space(specs: Sequence[str]) -> list[TaskParameter]:
    """Parse every parameter; a parameter written twice is refused."""
    params = [parse_parameter(s) for s in specs]
    seen = [p.key for p in params]
    twice = sorted({s for s in seen if seen.count(s) > 1})
    if twice:
        raise ConfigError(f"task space: {', '.join(twice)} given more than once")
    return params


def _names(model: mujoco.MjModel, obj: mujoco.mjtObj, count: int) -> list[str]:
    """Names of the objects; an unnamed actuator goes by the joint it drives (Gymnasium's Hopper names none)."""
    out = []
    for i in range(count):
        name = mujoco.mj_id2name(model, obj, i)
        if not name and obj is mujoco.mjtObj.mjOBJ_ACTUATOR and model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT:
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[i, 0]))
        out.append(name or f"#{i}")
    return out


_COUNTS = {
    mujoco.mjtObj.mjOBJ_BODY: "nbody",
    mujoco.mjtObj.mjOBJ_JOINT: "njnt",
    mujoco.mjtObj.mjOBJ_ACTUATOR: "nu",
    mujoco.mjtObj.mjOBJ_GEOM: "ngeom",
}


class ModelTaskSpace:
    """A parsed task space bound to one compiled model: the sampling half and the model edits.

    Args:
        model: the environment's live ``MjModel`` (edited in place by :meth:`apply`).
        specs: the parameter strings (module docstring).

    Raises:
        ConfigError: a malformed spec, or a pattern that matches no name of the model (the
            message lists the names it has).
    """

    def __init__(self, model: mujoco.MjModel, specs: Sequence[str]) -> None:
        self.model = model
        self.params = parse_task_space(specs)
        self.space = ParamSpace([p.scale for p in self.params])
        self._nominal = {f: self._field(f).copy() for p in self.params for f in KINDS[p.kind][1]}
        self._rows = {p.key: self._select(p) for p in self.params}

    def _field(self, name: str) -> np.ndarray:
        owner, _, attr = name.rpartition(".")
        return getattr(self.model.opt if owner == "opt" else self.model, attr)

    def _select(self, p: TaskParameter) -> np.ndarray | None:
        """Rows of the kind's fields that the pattern selects (``None``: the whole field)."""
        obj = KINDS[p.kind][0]
        if obj is None:
            return None
        names = _names(self.model, obj, getattr(self.model, _COUNTS[obj]))
        hit = [i for i, name in enumerate(names) if fnmatch.fnmatchcase(name, p.pattern)]
        if not hit:
            what = obj.name.removeprefix("mjOBJ_").lower()
            raise ConfigError(
                f"task space {p.spec!r}: the model has no {what} matching {p.pattern!r}; "
                f"its {'bodies' if what == 'body' else what + 's'}: {', '.join(names)}"
            )
        if obj is mujoco.mjtObj.mjOBJ_JOINT:  # joints -> their degrees of freedom
            return np.array([d for d in range(self.model.nv) if int(self.model.dof_jntid[d]) in hit])
        return np.array(hit)

    def apply(self, task: Task) -> None:
        """Write ``task``'s scales into the model from the nominal values (overlapping patterns multiply)."""
        for name, value in self._nominal.items():
            self._field(name)[:] = value
        for p in self.params:
            rows, scale = self._rows[p.key], float(task[p.key])
            for name in KINDS[p.kind][1]:
                field = self._field(name)
                every = slice(None) if rows is None else rows
                if p.kind == "friction":  # the sliding coefficient only (column 0)
                    field[every, 0] *= scale
                else:
                    field[every] *= scale

    def describe(self) -> dict[str, object]:
        return self.space.describe()
