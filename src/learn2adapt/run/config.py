"""The typed configuration of a run: :class:`RunConfig`, its sections, and their validation.

A run is described by one :class:`RunConfig`; :meth:`RunConfig.validate` refuses unknown names
and impossible settings with one line that says what to change. Reading options from text
(``--set`` overrides, TOML presets, a saved ``config.json``) is :mod:`learn2adapt.run.options`;
the presets are :mod:`learn2adapt.run.presets`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from learn2adapt.adaptation import ALGORITHMS, ENSEMBLE_ALGORITHMS, EVALUATION_ONLY, MODEL_FREE, REGISTRY, check_algo
from learn2adapt.adaptation.config import DE_SELECT, AdaptationConfig
from learn2adapt.data.segment_sampler import SEGMENT_EPOCHS
from learn2adapt.data.trajectory_buffer import VAL_SPLITS
from learn2adapt.errors import ConfigError
from learn2adapt.models.config import FitConfig, ModelConfig
from learn2adapt.models.fitting import FIT_PRECISIONS, FIT_SELECTS
from learn2adapt.moved import moved_names
from learn2adapt.planning.config import CUDA_GRAPH_NEEDS_FP32, PlannerConfig

#: The algorithms that learn a dynamics model and plan with it (evaluation-only online rules too).
MODEL_BASED: tuple[str, ...] = tuple(name for name in REGISTRY if name not in MODEL_FREE)


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
    # ``algos``: who reads a section (the dynamics model and MPC, or stable-baselines3); a --set
    # that the run's algorithm does not read is refused (learn2adapt.run.options.check_read).
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"algos": MODEL_BASED})
    fit: FitConfig = field(default_factory=FitConfig, metadata={"algos": MODEL_BASED})
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig, metadata={"algos": MODEL_BASED})
    planner: PlannerConfig = field(default_factory=PlannerConfig, metadata={"algos": MODEL_BASED})
    eval: EvalConfig = field(default_factory=EvalConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig, metadata={"algos": MODEL_FREE})

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
        for section in SECTION_CHECKS:
            for ok, message in section(self):
                if not ok:
                    raise ConfigError(message)
        check_schedule(self.eval.schedule)
        return self


#: ``(holds, the message if it does not)`` pairs: what one section of a config must satisfy.
Checks = list[tuple[bool, str]]


def _run_checks(cfg: RunConfig) -> Checks:
    """The top-level options: how much is collected, and from where."""
    return [
        (cfg.iterations >= 0, "iterations must be >= 0"),
        (cfg.random_episodes >= 1, "random_episodes must be >= 1 (iteration 0 needs data)"),
        (cfg.episodes_per_iteration >= 1, "episodes_per_iteration must be >= 1"),
        (cfg.episode_length >= 1, "episode_length must be >= 1"),
        (cfg.num_envs >= 1, "num_envs must be >= 1"),
        (
            not cfg.nominal or cfg.eval.schedule == "fixed",
            "nominal=true evaluates on the nominal task alone: set eval.schedule=fixed",
        ),
        (cfg.seed >= 0, "seed must be >= 0"),
    ]


def _adaptation_checks(cfg: RunConfig) -> Checks:
    """``adaptation.*``: the segments (which must fit in an episode) and the rules' step sizes."""
    a = cfg.adaptation
    return [
        (a.past >= 1 and a.future >= 1, "adaptation.past and adaptation.future must be >= 1"),
        (
            a.past + a.future <= cfg.episode_length,
            f"adaptation.past + adaptation.future ({a.past + a.future}) "
            f"exceeds episode_length ({cfg.episode_length}): no segment fits in an episode",
        ),
        (a.meta_batch >= 1, "adaptation.meta_batch must be >= 1"),
        (a.inner_steps >= 1, "adaptation.inner_steps must be >= 1"),
        (a.online_layers >= 0, "adaptation.online_layers must be >= 0 (0: every layer)"),
        (math.isfinite(a.inner_lr) and a.inner_lr >= 0, "adaptation.inner_lr must be a finite number >= 0"),
        (math.isfinite(a.de_lr) and a.de_lr >= 0, "adaptation.de_lr must be >= 0"),
        (a.de_select in DE_SELECT, f"adaptation.de_select must be one of: {' | '.join(DE_SELECT)}"),
        (0.0 <= a.short_past <= 1.0, "adaptation.short_past must be in [0, 1]"),
    ]


def _fit_checks(cfg: RunConfig) -> Checks:
    """``fit.*``: the validation split and the optimiser."""
    f = cfg.fit
    return [
        (0.0 <= f.val_fraction < 1.0, "fit.val_fraction must be in [0, 1)"),
        (f.val_split in VAL_SPLITS, f"fit.val_split must be one of {', '.join(VAL_SPLITS)} (got {f.val_split!r})"),
        (
            f.segment_epoch in SEGMENT_EPOCHS,
            f"fit.segment_epoch must be one of {', '.join(SEGMENT_EPOCHS)} (got {f.segment_epoch!r})",
        ),
        (_positive(f.lr), f"fit.lr must be a positive finite number (got {f.lr})"),
        (f.batch_size >= 1, "fit.batch_size must be >= 1"),
        (f.max_epochs >= 1, "fit.max_epochs must be >= 1"),
        (f.patience >= 1, "fit.patience must be >= 1"),
        (f.max_steps_per_epoch >= 0, "fit.max_steps_per_epoch must be >= 0 (0: a full pass)"),
        (f.max_steps >= 0, "fit.max_steps must be >= 0 (0: no step budget)"),
        (
            f.precision in FIT_PRECISIONS,
            f"fit.precision must be one of {', '.join(FIT_PRECISIONS)} (got {f.precision!r})",
        ),
        (f.select in FIT_SELECTS, f"fit.select must be one of {', '.join(FIT_SELECTS)} (got {f.select!r})"),
        (math.isfinite(f.grad_clip) and f.grad_clip >= 0, "fit.grad_clip must be >= 0 (0: off)"),
        (
            math.isfinite(f.weight_decay) and f.weight_decay >= 0,
            "fit.weight_decay must be a finite number >= 0 (0: off)",
        ),
    ]


def _model_checks(cfg: RunConfig) -> Checks:
    """``model.*``: the network, and an ensemble only where the algorithm has one."""
    m = cfg.model
    return [
        (len(m.hidden) >= 1, "model.hidden needs at least one layer width, e.g. 512x512"),
        (all(h >= 1 for h in m.hidden), "model.hidden widths must be >= 1"),
        (m.ensemble >= 1, "model.ensemble must be >= 1 (1: no ensemble)"),
        (0.0 <= m.nll_beta <= 1.0, "model.nll_beta must be in [0, 1] (0: the plain Gaussian NLL)"),
        (
            m.nll_beta == 0.0 or m.ensemble >= 2,
            "model.nll_beta weights an ensemble's Gaussian NLL: set model.ensemble >= 2, or leave nll_beta at 0",
        ),
        (
            m.ensemble == 1 or cfg.algo in ENSEMBLE_ALGORITHMS or cfg.algo in MODEL_FREE,
            f"model.ensemble > 1 (probabilistic ensemble) is implemented for --algo {', '.join(ENSEMBLE_ALGORITHMS)}",
        ),
    ]


def _planner_checks(cfg: RunConfig) -> Checks:
    """``planner.*`` (each planner checks its own options when it is built)."""
    p = cfg.planner
    return [
        (p.particles >= 1, "planner.particles must be >= 1"),
        (not (p.cuda_graph and cfg.device.startswith("cuda") and p.precision == "bf16"), CUDA_GRAPH_NEEDS_FP32),
    ]


def _eval_checks(cfg: RunConfig) -> Checks:
    """``eval.*`` (the schedule is parsed last, by :func:`check_schedule`)."""
    return [
        (cfg.eval.episodes_per_task >= 1, "eval.episodes_per_task must be >= 1"),
        (cfg.eval.episode_length >= 0, "eval.episode_length must be >= 0 (0: as in training)"),
    ]


def _baseline_checks(cfg: RunConfig) -> Checks:
    """``baseline.*``: the model-free baselines' budget and optimiser."""
    b = cfg.baseline
    return [
        (b.steps >= 1 and b.checkpoint_every >= 1, "baseline.steps and baseline.checkpoint_every must be >= 1"),
        (_positive(b.learning_rate), "baseline.learning_rate must be a positive finite number"),
        (b.rollout >= 2 and b.batch_size >= 1, "baseline.rollout must be >= 2 and baseline.batch_size >= 1"),
        (b.learning_starts >= 0, "baseline.learning_starts must be >= 0"),
    ]


#: What :meth:`RunConfig.validate` checks after the algorithm, environment and device, section by
#: section (the first message of the first section that fails is raised).
SECTION_CHECKS: tuple[Callable[[RunConfig], Checks], ...] = (
    _run_checks,
    _adaptation_checks,
    _fit_checks,
    _model_checks,
    _planner_checks,
    _eval_checks,
    _baseline_checks,
)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


#: Names that moved out of this module in 0.2, by new module: importable from here, with a warning, until 0.3.
_MOVED = {
    **{name: "learn2adapt.run.options" for name in ("apply_overrides", "load_config")},
    "preset_config": "learn2adapt.run.presets",
}

if not TYPE_CHECKING:  # mypy sees no __getattr__, so it still flags a name imported from the wrong module
    __getattr__ = moved_names(__name__, _MOVED)
