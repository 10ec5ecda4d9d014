"""Options of the adaptation rules (GrBAL, ReBAL, MB+DE, MOLe)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Which ``--algo`` reads an option (``metadata["algos"]``; absent: every model-based algorithm).
# Setting one that the run's algorithm does not read is refused (run.options), never ignored.
_META = ("grbal", "mole", "mole-oracle")  # GrBAL's meta-training, which MOLe's prior is
_ONLINE_STEP = ("grbal", "mbde")  # the online gradient step of adapted_predictor
_MIXTURE = ("mole", "mole-oracle")

#: How GrBAL scores the adapted model on the K future transitions (``adaptation.meta_loss``).
META_LOSSES = ("one-step", "open-loop")
#: How MB+DE gets its test-time step size and number of steps (``adaptation.de_select``).
DE_SELECT = ("fixed", "validation")


@dataclass
class MixtureConfig:
    """MOLe's online mixture of task models (``--algo mole``; docs/algorithms/mole.md)."""

    max_models: int = field(
        default=8,
        metadata={"help": "task models kept per environment (1: continued adaptation of one model)"},
    )
    alpha: float = field(
        default=1.0,
        metadata={
            "algos": _MIXTURE,
            "positive": True,
            "help": "concentration of the Chinese-restaurant-process prior (> 0): weight of a new task",
        },
    )
    sticky: float = field(
        default=0.0,
        metadata={
            "algos": _MIXTURE,
            "nonnegative": True,
            "help": "pseudo-count added to the previous step's task in the prior (>= 0)",
        },
    )
    temperature: float = field(
        default=1.0,
        metadata={
            "algos": _MIXTURE,
            "positive": True,
            "help": "multiplies the likelihood's variance (the post-adaptation validation error); > 1 flattens the posterior",
        },
    )
    variance: float = field(
        default=0.0,
        metadata={
            "algos": _MIXTURE,
            "nonnegative": True,
            "help": "likelihood variance of a normalised state change (0: the meta-trained model's post-adaptation validation error)",
        },
    )
    lr: float = field(
        default=0.0,
        metadata={
            "algos": _MIXTURE,
            "nonnegative": True,
            "help": "M-step step size on the newest transitions (0: GrBAL's inner step size, learned or fixed)",
        },
    )
    recent: int = field(
        default=0,
        metadata={
            "algos": _MIXTURE,
            "help": "size of D2, the newest transitions scored in the E step (0: M / 4); D1 = the M - D2 before it",
        },
    )
    surprise: float = field(
        default=5.0,
        metadata={
            "algos": _MIXTURE,
            "nonnegative": True,
            "help": "a model whose error on D2 exceeds surprise x its own running error takes no M step "
            "there, so a task change cannot drag it to the new task (0: off; docs/algorithms/mole.md)",
        },
    )
    keep_across_episodes: bool = field(
        default=False,
        metadata={
            "algos": _MIXTURE,
            "help": "keep the task models across the episodes of one environment (recall across episodes)",
        },
    )


@dataclass
class AdaptationConfig:
    """How the model adapts to the recent past (Nagabandi et al., 2019, Sec. 4)."""

    past: int = field(
        default=16, metadata={"help": "M: recent transitions used to adapt (online and in meta-training)"}
    )
    future: int = field(
        default=16, metadata={"help": "K: transitions after the past on which the adapted model is scored"}
    )
    meta_batch: int = field(
        default=10, metadata={"algos": (*_META, "rebal"), "help": "segments per meta-training step"}
    )
    inner_lr: float = field(
        default=0.001,
        metadata={"algos": _META, "help": "alpha: inner (adaptation) step size, or its initial value when learned"},
    )
    inner_steps: int = field(
        default=1, metadata={"algos": (*_META, "mbde"), "help": "gradient steps of the inner update"}
    )
    step_size: str = field(
        default="fixed",
        metadata={
            "algos": _META,
            "help": "inner step size: fixed | scalar (learned) | per_parameter (learned, Meta-SGD)",
        },
    )
    first_order: bool = field(
        default=False, metadata={"algos": _META, "help": "drop second-order terms of the meta-gradient (FOMAML)"}
    )
    guard: bool = field(
        default=False,
        metadata={
            "algos": _ONLINE_STEP,
            "help": "GrBAL / MB+DE online: keep the fitted model for an environment (an ensemble member) whose inner step raised the loss on its own adaptation window (an overshoot, e.g. on states far from the training data); meta-training unchanged; settable at test time (eval --set)",
        },
    )
    meta_loss: str = field(
        default="one-step",
        metadata={
            "algos": _META,
            "help": "GrBAL (and MOLe's prior) meta-training score of the adapted model on the K future transitions: one-step (each predicted from the true state, the paper's) | open-loop (the adapted model fed its own predictions under the recorded actions, as the planner uses it; docs/algorithms/grbal.md)",
        },
    )
    online_layers: int = field(
        default=0,
        metadata={
            "algos": _ONLINE_STEP,
            "help": "GrBAL / MB+DE online: adapt only the last N layers at each control step (0: all); the others stay theta*'s, shared by every environment, so planning runs them packed and fused; meta-training unchanged; settable at test time (eval --set)",
        },
    )
    inner_impl: str = field(
        default="auto",
        metadata={
            "algos": _META,
            "help": "GrBAL meta-training inner update: auto (lowrank when the step size is scalar, else batched) | lowrank | batched | vmap | loop (reference); all exact",
        },
    )
    short_past: float = field(
        default=0.0,
        metadata={
            "algos": (*_META, "rebal"),
            "help": "GrBAL / ReBAL (segments): fraction of meta-training segments whose past is cut to a random count in [0, M) (right-aligned, as online at episode starts), so the model also adapts well on short histories; the presets use 0.25 for ReBAL",
        },
    )
    de_lr: float = field(
        default=0.01,
        metadata={
            "algos": ("mbde",),
            "help": "MB+DE: step size of the test-time gradient steps on the last M transitions (no meta-training, so it is larger than GrBAL's learned-for alpha); steps: inner_steps",
        },
    )
    de_select: str = field(
        default="validation",
        metadata={
            "algos": ("mbde",),
            "help": "MB+DE: fixed (de_lr, inner_steps) | validation (after every fit, the step size and number of steps with the lowest post-adaptation K-step error on segments of held-out *training* episodes; docs/algorithms/mb_de.md)",
        },
    )
    rnn: str = field(default="gru", metadata={"algos": ("rebal",), "help": "ReBAL recurrent cell: gru | lstm"})
    rnn_hidden: int = field(default=256, metadata={"algos": ("rebal",), "help": "ReBAL recurrent hidden size"})
    rnn_training: str = field(
        default="segments",
        metadata={
            "algos": ("rebal",),
            "help": "ReBAL objective: segments (M past / K future) | tbptt (whole trajectories, truncated BPTT)",
        },
    )
    tbptt_length: int = field(
        default=100, metadata={"algos": ("rebal",), "help": "ReBAL truncated-BPTT window when rnn_training=tbptt"}
    )
    mixture: MixtureConfig = field(default_factory=MixtureConfig, metadata={"algos": _MIXTURE})
