"""The typed configuration of a run, its presets, and ``key=value`` overrides.

A run is described by one :class:`RunConfig`; every field (nested ones by a
dotted path such as ``planner.horizon``) can be overridden from the command
line, and the fully resolved config is saved in the run directory.

Presets live in ``learn2adapt/presets/``: ``_base.toml`` holds one table per
protocol (``[quick]``, ``[paper]``) shared by every environment family, and
``<family>.toml`` (one file per family; a name starting with ``_`` is not a family)
holds the family's ``env`` and only what differs, as tables of the same names.
A family's presets are the base protocols plus any other table it defines. A
preset resolves by deep merge (a value of a later layer replaces the earlier one,
tables merge key by key):

1. the base table of the same name from ``_base.toml`` (none for a name it lacks;
   if it has a key ``base = "<table>"``, merged onto that base table, e.g. ``[medium]``
   is ``[quick]`` plus ``medium``'s values), or, if the family's table has a key
   ``base = "<preset>"``, that preset of the same family, itself resolved (e.g.
   PendulumVaried's ``[demo]`` is its resolved ``quick`` plus ``demo``'s values);
2. the family's table;
3. for the chosen algorithm, the sub-table of that name of the merged result
   (``[paper.mb]``, ``[paper.rebal]``, ...), applied over the rest.

``tests/data/resolved_presets.json`` is the snapshot of every resolved preset
(family x preset x algorithm); ``tests/test_presets.py`` checks the files still
resolve to it, so a change of the files cannot silently change an experiment.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import math
import sys
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from learn2adapt.adaptation import ALGORITHMS, ENSEMBLE_ALGORITHMS, EVALUATION_ONLY, MODEL_FREE, check_algo
from learn2adapt.adaptation.config import DE_SELECT, AdaptationConfig
from learn2adapt.data.segment_sampler import SEGMENT_EPOCHS
from learn2adapt.data.trajectory_buffer import VAL_SPLITS
from learn2adapt.errors import ConfigError
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.fitting import FIT_PRECISIONS, FIT_SELECTS
from learn2adapt.planning.config import CUDA_GRAPH_NEEDS_FP32, PlannerConfig


def check_env(cfg: RunConfig) -> None:
    """Refuse an unknown ``env`` (with a suggestion) and environment options it cannot take.

    A learn2adapt family has its own tasks and exact reward, so ``task_space`` and reward or
    termination *functions* are for other Gymnasium environments (``reward=learned`` works on
    any: it measures what learning the reward costs); for those, the environment is built once
    here (cached) so that a bad task space or function fails before anything is written.
    """
    from learn2adapt.envs.catalog import check_env_id, check_family_options, find_family  # noqa: PLC0415
    from learn2adapt.envs.gym_task_env import LEARNED  # noqa: PLC0415

    check_env_id(cfg.env)
    if cfg.algo in MODEL_FREE and (cfg.reward or cfg.termination):
        raise ConfigError(
            f"reward and termination are what a planner scores candidates with; --algo {cfg.algo} does not plan: "
            "leave them unset"
        )
    if cfg.termination == LEARNED and cfg.reward != LEARNED:
        raise ConfigError("termination=learned is learned with the reward: set reward=learned too")
    check_family_options(cfg.env, cfg.task_space, cfg.reward, cfg.termination)
    if find_family(cfg.env) is not None:
        return
    if cfg.algo not in MODEL_FREE and not cfg.reward:
        raise ConfigError(
            f"{cfg.env} has no batched reward for the planner: set reward=module:function "
            f"(batched torch (obs, act, next_obs) -> reward, e.g. my_robot.rewards:reward) or reward={LEARNED}"
        )
    _check_env_options(cfg.env, tuple(cfg.task_space), cfg.reward, cfg.termination)


@functools.cache
def _check_env_options(env_id: str, task_space: tuple[str, ...], reward: str, termination: str) -> None:
    from learn2adapt.envs import make_env  # noqa: PLC0415

    make_env(env_id, task_space=task_space, reward=reward, termination=termination).close()


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


#: The largest integer an option may hold: what torch, NumPy and the checkpoint store (int64).
INT64_MAX = 2**63 - 1


def check_numbers(cfg: Any, prefix: str = "") -> None:
    """Refuse a float option that is not finite, or not > 0 / >= 0 where its field's metadata says
    ``positive`` / ``nonnegative``, and an integer beyond int64, in every (nested) options dataclass.

    Derived from each field's type and metadata, not written per option, so a new option gets it
    for free (``tests/unit/test_config.py`` scans every field).

    Raises:
        ConfigError: one line naming the option and the accepted values.
    """
    hints = _field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        name, value, kind = prefix + f.name, getattr(cfg, f.name), hints[f.name]
        if dataclasses.is_dataclass(value):
            check_numbers(value, name + ".")
        elif kind is float and isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number (got {value})")
            if f.metadata.get("positive") and not value > 0:
                raise ConfigError(f"{name} must be > 0 (got {value})")
            if f.metadata.get("nonnegative") and not value >= 0:
                raise ConfigError(f"{name} must be >= 0 (got {value})")
        else:
            ints = value if isinstance(value, (list, tuple)) else [value]
            for v in ints:
                if isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT64_MAX:
                    raise ConfigError(f"{name}={v} is beyond a 64-bit integer (at most {INT64_MAX})")


def check_schedule(spec: str) -> None:
    """Raise :class:`ConfigError` unless ``spec`` is a valid evaluation schedule (before any training)."""
    from learn2adapt.envs.schedules import parse_schedule  # noqa: PLC0415

    if spec and spec != "fixed":
        parse_schedule(spec)


def check_device(device: str) -> None:
    """Raise :class:`ConfigError` unless this torch can run on ``device`` (before any work starts)."""
    import torch  # noqa: PLC0415  (config parsing alone does not need torch)

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r}: this torch build has no usable CUDA device "
                "(torch.cuda.is_available() is False); install a CUDA build of torch or use device=cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")


def _usable_device() -> str:
    """The device a run moved to this machine is offered: ``cuda`` where torch can use one, else ``cpu``."""
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class BaselineConfig:
    """Model-free baselines (``--algo ppo | sac``, stable-baselines3; docs/algorithms/baselines.md)."""

    steps: int = field(default=100_000, metadata={"help": "environment-step budget of a ppo / sac run (>= 1)"})
    checkpoint_every: int = field(
        default=10_000, metadata={"help": "environment steps between checkpoints (and metrics rows)"}
    )
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam learning rate (SB3's default for PPO and SAC)"})
    rollout: int = field(default=2048, metadata={"help": "PPO: environment steps per update (n_steps)"})
    batch_size: int = field(default=64, metadata={"help": "PPO minibatch / SAC batch size"})
    learning_starts: int = field(default=1000, metadata={"help": "SAC: random-action steps before learning starts"})


@dataclass
class EvalConfig:
    """Held-out evaluation."""

    episodes_per_task: int = field(default=5, metadata={"help": "episodes per held-out test task"})
    episode_length: int = field(default=0, metadata={"help": "steps per evaluation episode (0: as in training)"})
    schedule: str = field(
        default="fixed",
        metadata={
            "help": "task schedule during evaluation episodes, e.g. fixed | switch:t=100 (see `learn2adapt envs`)"
        },
    )


@dataclass
class RunConfig:
    """Everything that defines a training run (Nagabandi et al., 2019, Alg. 1-2)."""

    env: str = field(
        default="learn2adapt/PendulumVaried-v0", metadata={"help": "environment id (see `learn2adapt envs`)"}
    )
    algo: str = field(default="mb", metadata={"help": " | ".join(ALGORITHMS)})
    seed: int = field(default=0, metadata={"help": "seed of every random number generator of the run"})
    device: str = field(default="cpu", metadata={"help": "torch device: cpu | cuda | cuda:N"})
    iterations: int = field(
        default=5, metadata={"help": "MPC collection iterations after the random-action iteration 0"}
    )
    random_episodes: int = field(default=10, metadata={"help": "episodes of random actions in iteration 0"})
    episodes_per_iteration: int = field(
        default=5,
        metadata={
            "help": "episodes collected with MPC per iteration (n_S = this x episode_length steps between model updates)"
        },
    )
    episode_length: int = field(default=200, metadata={"help": "maximum steps per training episode"})
    num_envs: int = field(
        default=5, metadata={"help": "environments stepped (and planned for) at once while collecting"}
    )
    nominal: bool = field(
        default=False,
        metadata={
            "help": "train and evaluate on the unmodified robot only (the family's nominal task, no change of dynamics): what the controller reaches at this budget; needs eval.schedule=fixed"
        },
    )
    task_space: list[str] = field(
        default_factory=list,
        metadata={
            "help": "tasks of a Gymnasium MuJoCo environment that is not a learn2adapt family: "
            "KIND[:PATTERN]=TRAIN/TEST scales of the compiled model, e.g. mass:torso=0.5..1.5/1.7..2 "
            "(kinds: mass inertia damping armature gear ctrlrange friction gravity; docs/your-robot.md); "
            "empty: the nominal task only"
        },
    )
    reward: str = field(
        default="",
        metadata={
            "help": "batched reward the planner scores with: module:function, torch (obs, act, next_obs) -> (...,) "
            "(environments that are not learn2adapt families), or learned (any: a network fitted with the model); "
            "empty: the family's exact reward"
        },
    )
    termination: str = field(
        default="",
        metadata={
            "help": "batched termination flags for the planner: module:function, torch (obs, act, next_obs) -> "
            "(...,) booleans (environments that are not families), or learned (with reward=learned); "
            "empty: the family's, else never"
        },
    )
    offline: str = field(
        default="",
        metadata={
            "help": "a recording (learn2adapt record, the format of learn2adapt.data.recorded) or a local Minari "
            "dataset (learn2adapt.data.minari) that replaces "
            "iteration 0's random episodes: with iterations=0 the model is trained with no environment stepped; "
            "later iterations collect with MPC as usual"
        },
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)

    def env_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~learn2adapt.envs.make_env` this run's environment takes."""
        return {"task_space": tuple(self.task_space), "reward": self.reward, "termination": self.termination}

    def validate(self) -> RunConfig:
        """Reject unknown names and impossible settings with a message that says what to change."""
        check_numbers(self)
        check_algo(self.algo)
        if self.algo in EVALUATION_ONLY:
            raise ConfigError(
                f"--algo {self.algo} is evaluation only: train --algo grbal, then "
                f"learn2adapt eval RUN --online {self.algo}"
            )
        check_env(self)
        if self.offline and self.algo in MODEL_FREE:
            raise ConfigError(
                f"offline: --algo {self.algo} learns from its own interaction; train a model-based algorithm"
            )
        check_device(self.device)
        checks = [
            (self.iterations >= 0, "iterations must be >= 0"),
            (self.random_episodes >= 1, "random_episodes must be >= 1 (iteration 0 needs data)"),
            (self.episodes_per_iteration >= 1, "episodes_per_iteration must be >= 1"),
            (self.episode_length >= 1, "episode_length must be >= 1"),
            (self.num_envs >= 1, "num_envs must be >= 1"),
            (
                not self.nominal or self.eval.schedule == "fixed",
                "nominal=true evaluates on the nominal task alone: set eval.schedule=fixed",
            ),
            (
                self.adaptation.past >= 1 and self.adaptation.future >= 1,
                "adaptation.past and adaptation.future must be >= 1",
            ),
            (
                self.adaptation.past + self.adaptation.future <= self.episode_length,
                f"adaptation.past + adaptation.future ({self.adaptation.past + self.adaptation.future}) "
                f"exceeds episode_length ({self.episode_length}): no segment fits in an episode",
            ),
            (0.0 <= self.fit.val_fraction < 1.0, "fit.val_fraction must be in [0, 1)"),
            (
                self.fit.val_split in VAL_SPLITS,
                f"fit.val_split must be one of {', '.join(VAL_SPLITS)} (got {self.fit.val_split!r})",
            ),
            (
                self.fit.segment_epoch in SEGMENT_EPOCHS,
                f"fit.segment_epoch must be one of {', '.join(SEGMENT_EPOCHS)} (got {self.fit.segment_epoch!r})",
            ),
            (len(self.model.hidden) >= 1, "model.hidden needs at least one layer width, e.g. 512x512"),
            (all(h >= 1 for h in self.model.hidden), "model.hidden widths must be >= 1"),
            (self.seed >= 0, "seed must be >= 0"),
            (_positive(self.fit.lr), f"fit.lr must be a positive finite number (got {self.fit.lr})"),
            (self.fit.batch_size >= 1, "fit.batch_size must be >= 1"),
            (self.fit.max_epochs >= 1, "fit.max_epochs must be >= 1"),
            (self.fit.patience >= 1, "fit.patience must be >= 1"),
            (self.fit.max_steps_per_epoch >= 0, "fit.max_steps_per_epoch must be >= 0 (0: a full pass)"),
            (self.fit.max_steps >= 0, "fit.max_steps must be >= 0 (0: no step budget)"),
            (
                self.fit.precision in FIT_PRECISIONS,
                f"fit.precision must be one of {', '.join(FIT_PRECISIONS)} (got {self.fit.precision!r})",
            ),
            (
                self.fit.select in FIT_SELECTS,
                f"fit.select must be one of {', '.join(FIT_SELECTS)} (got {self.fit.select!r})",
            ),
            (math.isfinite(self.fit.grad_clip) and self.fit.grad_clip >= 0, "fit.grad_clip must be >= 0 (0: off)"),
            (
                math.isfinite(self.fit.weight_decay) and self.fit.weight_decay >= 0,
                "fit.weight_decay must be a finite number >= 0 (0: off)",
            ),
            (self.adaptation.meta_batch >= 1, "adaptation.meta_batch must be >= 1"),
            (self.adaptation.inner_steps >= 1, "adaptation.inner_steps must be >= 1"),
            (
                math.isfinite(self.adaptation.inner_lr) and self.adaptation.inner_lr >= 0,
                "adaptation.inner_lr must be a finite number >= 0",
            ),
            (math.isfinite(self.adaptation.de_lr) and self.adaptation.de_lr >= 0, "adaptation.de_lr must be >= 0"),
            (self.model.ensemble >= 1, "model.ensemble must be >= 1 (1: no ensemble)"),
            (0.0 <= self.model.nll_beta <= 1.0, "model.nll_beta must be in [0, 1] (0: the plain Gaussian NLL)"),
            (
                self.model.nll_beta == 0.0 or self.model.ensemble >= 2,
                "model.nll_beta weights an ensemble's Gaussian NLL: set model.ensemble >= 2, or leave nll_beta at 0",
            ),
            (
                self.model.ensemble == 1 or self.algo in ENSEMBLE_ALGORITHMS or self.algo in MODEL_FREE,
                f"model.ensemble > 1 (probabilistic ensemble) is implemented for --algo {', '.join(ENSEMBLE_ALGORITHMS)}",
            ),
            (self.planner.particles >= 1, "planner.particles must be >= 1"),
            (
                not (self.planner.cuda_graph and self.device.startswith("cuda") and self.planner.precision == "bf16"),
                CUDA_GRAPH_NEEDS_FP32,
            ),
            (self.adaptation.de_select in DE_SELECT, f"adaptation.de_select must be one of: {' | '.join(DE_SELECT)}"),
            (0.0 <= self.adaptation.short_past <= 1.0, "adaptation.short_past must be in [0, 1]"),
            (self.eval.episodes_per_task >= 1, "eval.episodes_per_task must be >= 1"),
            (self.eval.episode_length >= 0, "eval.episode_length must be >= 0 (0: as in training)"),
            (
                self.baseline.steps >= 1 and self.baseline.checkpoint_every >= 1,
                "baseline.steps and baseline.checkpoint_every must be >= 1",
            ),
            (_positive(self.baseline.learning_rate), "baseline.learning_rate must be a positive finite number"),
            (
                self.baseline.rollout >= 2 and self.baseline.batch_size >= 1,
                "baseline.rollout must be >= 2 and baseline.batch_size >= 1",
            ),
            (self.baseline.learning_starts >= 0, "baseline.learning_starts must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        check_schedule(self.eval.schedule)
        return self


# --- dict <-> dataclass ---------------------------------------------------------------------
def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (a TOML value, JSON value or CLI string) to type ``tp``."""
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            # "512x512" or "512,512" for layer widths
            text = value.replace("x", ",") if item is int else value
            value = [v for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item, key) for v in value]
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: cannot read {value!r} as {getattr(tp, '__name__', tp)}") from None
    raise ConfigError(f"{key}: unsupported field type {tp}")


def _unknown_key(key: str, known: Iterable[str]) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `learn2adapt options` to list them"
    return ConfigError(f"unknown config key {key!r}{hint}")


def update(cfg: Any, values: dict[str, Any], prefix: str = "") -> Any:
    """Apply a nested dict of values to a dataclass instance in place."""
    types = _field_types(type(cfg))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in types:
            raise _unknown_key(key, all_keys(cfg, prefix))
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table of options, got {value!r}")
            update(current, value, f"{key}.")
        else:
            setattr(cfg, name, _coerce(value, types[name], key))
    return cfg


def all_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted option name of a config."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out += all_keys(value, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def describe_options(cfg: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, current value, help)`` for every option."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out += describe_options(value, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", json.dumps(value), f.metadata.get("help", "")))
    return out


def apply_overrides(cfg: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """Apply ``key=value`` strings (dotted keys for nested options)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        nested: dict[str, Any] = {}
        node = nested
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        update(cfg, nested)
    return cfg


#: Planner options that were flat keys before the per-planner sections (``planner.cem_iterations``).
_FLAT_PLANNER_PREFIXES = ("cem_", "mppi_", "icem_")


def _migrate(values: dict[str, Any]) -> dict[str, Any]:
    """A saved config in today's layout (runs written before 0.2): ``planner.cem_x`` -> ``planner.cem.x``,
    ReBAL's ``adaptation.rnn_short_past`` -> ``adaptation.short_past``; a run written before
    ``fit.val_split`` or ``fit.select`` existed keeps the validation split and the choice of
    weights it was trained with (``redraw``, ``prefit``)."""
    fit = values.get("fit")
    if isinstance(fit, dict):
        fit.setdefault("val_split", "redraw")
        fit.setdefault("select", "prefit")
    adaptation = values.get("adaptation")
    if isinstance(adaptation, dict) and "rnn_short_past" in adaptation:  # ReBAL's own option before 0.2
        value = adaptation.pop("rnn_short_past")
        if values.get("algo") == "rebal":
            adaptation["short_past"] = value
    planner = values.get("planner")
    if isinstance(planner, dict):
        for key in [k for k in planner if k.startswith(_FLAT_PLANNER_PREFIXES)]:
            section, option = key.split("_", 1)
            planner.setdefault(section, {})[option] = planner.pop(key)
    return values


def from_dict(values: dict[str, Any]) -> RunConfig:
    return update(RunConfig(), _migrate(values))


def config_text(cfg: RunConfig) -> str:
    """The ``config.json`` text of ``cfg`` (the checkpoint stores its digest)."""
    return json.dumps(to_dict(cfg), indent=2) + "\n"


def save_config(cfg: RunConfig, path: Path) -> None:
    from learn2adapt.run.run_dir import atomic_write_text

    atomic_write_text(Path(path), config_text(cfg))


#: Saved configurations already reported as loaded on the CPU (see :func:`load_config`).
_NOTED_ON_CPU: set[Path] = set()


def load_config(path: Path, *, on_this_machine: bool = False, device: str | None = None) -> RunConfig:
    """Read and validate a saved ``config.json``.

    Args:
        path: the file.
        on_this_machine: a run loaded to be used here (evaluated, diagnosed, filmed): if its
            ``device`` is one this machine cannot use (trained on a GPU, evaluated on a laptop), it
            is loaded on the CPU instead, with a one-line note. Without it (a run loaded to be
            continued), such a device is refused with the resume that moves the run here.
        device: the device to run on instead of the saved one (a resume moved to another
            machine, ``--set device=...``).

    Raises:
        ConfigError: the file is empty, not JSON, or holds an impossible configuration (one line
            saying what to do).
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        what = "empty" if path.stat().st_size == 0 else f"not valid JSON ({type(e).__name__})"
        if (path.parent / "checkpoint.pt").exists():  # a trained run: never advise deleting it
            raise ConfigError(
                f"{path} is {what}, but {path.parent} holds a checkpoint (a trained run; do not delete it): "
                f"restore {path.name} from a copy of the run; the checkpoint's configuration digest checks "
                "that the restored file is the run's own"
            ) from None
        raise ConfigError(
            f"{path} is {what}: the run was stopped while it was being set up; delete {path.parent} "
            f"(or run `learn2adapt train --run-dir {path.parent}` to start it again in place)"
        ) from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} does not hold a configuration (a JSON object)")
    if device is not None:
        values["device"] = device
    elif isinstance(values.get("device"), str):
        try:
            check_device(values["device"])
        except ConfigError:
            if not on_this_machine:
                raise ConfigError(
                    f"{path.parent} ran on {values['device']!r}, which this machine cannot use: continue it here "
                    f"with `learn2adapt train --resume {path.parent} --set device={_usable_device()}`"
                ) from None
            if path.resolve() not in _NOTED_ON_CPU:  # once per run and process
                _NOTED_ON_CPU.add(path.resolve())
                print(
                    f"note: {path.parent} ran on {values['device']!r}, which this machine cannot use: "
                    "loading it on the cpu",
                    file=sys.stderr,
                )
            values["device"] = "cpu"
    try:
        return from_dict(values).validate()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# --- presets ------------------------------------------------------------------------------
#: The shared base of every family's presets (see the module docstring).
_BASE_FILE = "_base"
#: Preset sub-tables that apply to one algorithm only, e.g. ``[paper.mb]``.
_ALGO_TABLES = ALGORITHMS


def _read_presets() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(base, families)``: ``_base.toml`` and the family files, as written."""
    base: dict[str, Any] = {}
    families: dict[str, dict[str, Any]] = {}
    for entry in sorted(resources.files("learn2adapt.presets").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        name = entry.name[: -len(".toml")]
        data = _read_toml(entry.read_text(), f"presets/{entry.name}")
        if name == _BASE_FILE:
            base = data
        elif not name.startswith("_"):
            families[name] = data
    return base, families


def _preset_files() -> dict[str, dict[str, Any]]:
    """The family files as written (only their differences from ``_base.toml``), by family name."""
    return _read_presets()[1]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge into a new dict: ``over``'s values replace ``base``'s, tables merge key by key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _preset_names(base: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """A family's presets: the base protocols, then the family's other tables."""
    names = [k for k, v in base.items() if isinstance(v, dict)]
    return names + [k for k, v in data.items() if isinstance(v, dict) and k not in names]


def _resolve_preset(
    family: str, data: dict[str, Any], base: dict[str, Any], name: str, chain: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Steps 1-2 of the module docstring: the preset's table, per-algorithm sub-tables still inside."""
    if name in chain:
        raise ConfigError(f"presets/{family}.toml: preset {name!r} is its own base ({' -> '.join(chain + (name,))})")
    own = data.get(name, {})
    parent = own.get("base")
    if parent is None:
        start = _base_table(base, name)
    elif parent not in _preset_names(base, data):
        raise ConfigError(
            f"presets/{family}.toml: [{name}] base = {parent!r} is not a preset of {family}; "
            f"available: {', '.join(_preset_names(base, data))}"
        )
    else:
        start = _resolve_preset(family, data, base, parent, chain + (name,))
    return _merge(start, {k: v for k, v in own.items() if k != "base"})


def _base_table(base: dict[str, Any], name: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A table of ``_base.toml``, merged onto the base table its own ``base`` key names (if any)."""
    own = base.get(name, {})
    parent = own.get("base")
    if parent is None:
        return own
    if parent in chain + (name,) or parent not in base:
        raise ConfigError(f"presets/_base.toml: [{name}] base = {parent!r} is not another table of _base.toml")
    return _merge(_base_table(base, parent, chain + (name,)), {k: v for k, v in own.items() if k != "base"})


def list_presets() -> dict[str, dict[str, Any]]:
    """Resolved presets by family: ``{family: {"env": id, "quick": {...}, "paper": {...}, ...}}``.

    Each preset table is merged with its base (per-algorithm sub-tables such as
    ``"mb"`` still inside; :func:`preset_config` applies the chosen one).
    """
    base, families = _read_presets()
    out = {}
    for family, data in families.items():
        resolved = {k: v for k, v in data.items() if not isinstance(v, dict)}
        for name in _preset_names(base, data):
            resolved[name] = _resolve_preset(family, data, base, name)
        out[family] = resolved
    return out


def describe_presets() -> str:
    """The preset names and the families that have them, for ``--preset`` help texts."""
    base, families = _read_presets()
    owners: dict[str, list[str]] = {}
    for family, data in families.items():
        for name in _preset_names(base, data):
            owners.setdefault(name, []).append(family)
    every = [name for name, fams in owners.items() if len(fams) == len(families)]
    parts = [" | ".join(every) + " (every family)"] if every else []
    parts += [f"{name} ({', '.join(fams)})" for name, fams in owners.items() if name not in every]
    return ", ".join(parts)


def family_of(env_id: str) -> str | None:
    for family, data in _preset_files().items():
        if data.get("env") == env_id:
            return family
    return None


def split_preset(preset: str) -> tuple[Path | None, str]:
    """``FILE.toml[:NAME]`` -> ``(FILE.toml, NAME)`` (``NAME`` defaults to ``quick``); a name -> ``(None, name)``."""
    end = preset.find(".toml")
    if end < 0:
        return None, preset
    end += len(".toml")
    rest = preset[end:]
    if rest and not rest.startswith(":"):
        raise ConfigError(f"--preset {preset!r}: write FILE.toml or FILE.toml:NAME")
    return Path(preset[:end]), rest[1:] or "quick"


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def preset_env(preset: str | None) -> str | None:
    """The ``env`` a preset file names (``None`` for a preset name, or a file without one)."""
    file = split_preset(preset)[0] if preset else None
    return _preset_file(file).get("env") if file else None


def _preset_file(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except OSError as e:
        raise ConfigError(f"--preset {file}: cannot read it ({e.strerror})") from None
    return _read_toml(text, str(file))


def _family_presets(env_id: str) -> tuple[str, dict[str, Any]]:
    """``(name for messages, family table)`` of ``env_id``: ours, a plugin's file, or none (the base protocols)."""
    family = family_of(env_id)
    if family is not None:
        return family, _preset_files()[family]
    from learn2adapt.envs.catalog import find_family  # noqa: PLC0415

    fam = find_family(env_id)
    if fam is None or not fam.presets:
        return env_id, {}
    package, _, name = fam.presets.partition(":")
    try:
        text = resources.files(package).joinpath(name).read_text()
    except (ModuleNotFoundError, OSError) as e:
        raise ConfigError(f"{env_id}: its presets {fam.presets!r} cannot be read ({e})") from None
    return fam.presets, _read_toml(text, fam.presets)


def preset_config(env_id: str, preset: str = "quick", algo: str | None = None) -> RunConfig:
    """The resolved config of ``preset`` for ``env_id`` (and ``algo``, whose table overrides).

    Resolution as in the module docstring: the base table, the family's differences,
    then the per-algorithm sub-table (e.g. ``[paper.mb]``) when that algorithm is chosen.
    ``preset`` is a name, or a preset file of the user's, ``FILE.toml[:NAME]``, in the format
    of a family file. An environment with no family file (any Gymnasium id, a plugin without
    presets) gets the base protocols of ``_base.toml``.
    """
    cfg = RunConfig(env=env_id)
    if algo is not None:
        cfg.algo = algo
    base, _ = _read_presets()
    file, name = split_preset(preset)
    if file is not None:
        label, data = str(file), _preset_file(file)
        if data.get("env", env_id) != env_id:
            raise ConfigError(f"--preset {file} is written for --env {data['env']}, not {env_id}")
    else:
        label, data = _family_presets(env_id)
    names = _preset_names(base, data)
    if name not in names:
        raise ConfigError(f"preset {name!r} not defined for {env_id} ({label}); available: " + ", ".join(names))
    table = _resolve_preset(label, data, base, name)
    algo_tables = {k: table.pop(k) for k in list(table) if k in _ALGO_TABLES}
    update(cfg, table)
    if cfg.algo in algo_tables:
        update(cfg, algo_tables[cfg.algo])
    cfg.env = env_id
    return cfg
