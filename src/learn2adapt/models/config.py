"""Options of the dynamics model and of its supervised / meta training."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    """Dynamics network."""

    hidden: list[int] = field(
        default_factory=lambda: [512, 512, 512],
        metadata={"help": "hidden layer widths of the MLP (GrBAL paper: 512x3)"},
    )
    activation: str = field(default="relu", metadata={"help": "activation: relu | tanh | silu | elu"})
    ensemble: int = field(
        default=1,
        metadata={
            "help": "1: one deterministic MLP; B >= 2: a probabilistic ensemble of B Gaussian MLPs trained on bootstrapped data (PETS; --algo mb, mbde, grbal or rebal); plan with planner.particles"
        },
    )
    nll_beta: float = field(
        default=0.0,
        metadata={
            "help": "ensembles: beta of the beta-NLL loss (Seitzer et al. 2022), in [0, 1]: each Gaussian NLL term weighted by its variance^beta; 0: PETS's plain NLL, whose mean fits poorly where the variance is large"
        },
    )


@dataclass
class FitConfig:
    """How a model is (re)fitted on the aggregated data each iteration."""

    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (outer learning rate for meta-training)"})
    batch_size: int = field(
        default=128,
        metadata={"help": "transitions per step (segments per meta-batch for GrBAL/ReBAL use adaptation.meta_batch)"},
    )
    max_epochs: int = field(
        default=100, metadata={"help": "upper bound on passes over the training split per iteration"}
    )
    patience: int = field(
        default=5, metadata={"help": "early stopping: epochs without validation improvement before stopping"}
    )
    val_fraction: float = field(
        default=0.1, metadata={"help": "fraction of episodes held out for validation / early stopping"}
    )
    val_split: str = field(
        default="stable",
        metadata={
            "help": "which episodes validate: stable (episode k when a draw seeded by k alone falls below val_fraction, episode 0 never: no fit trains on an episode once it validated) | redraw (drawn anew at every fit, as before 2026-11-27: warm-started fits are then scored on episodes they trained on)"
        },
    )
    segment_epoch: str = field(
        default="transitions",
        metadata={
            "help": "GrBAL / ReBAL meta-training epoch: transitions (one pass over the training transitions: transitions / (meta_batch x (M+K)) meta-steps, as the official code) | starts (every segment start once: each transition seen M+K times)"
        },
    )
    max_steps_per_epoch: int = field(
        default=0, metadata={"help": "cap on gradient steps per epoch (0: a full pass over the data)"}
    )
    max_steps: int = field(
        default=0,
        metadata={
            "help": "step budget of one fit (one iteration's training): once spent, the fit validates, keeps its best weights and stops (0: no budget, early stopping alone)"
        },
    )
    precision: str = field(
        default="fp32",
        metadata={
            "help": "training-step precision: fp32 | bf16 (each batch's forward and backward under autocast; weights, optimiser state and validation stay fp32)"
        },
    )
    select: str = field(
        default="epoch",
        metadata={
            "help": "which weights a fit ends with: epoch (the best epoch of this fit on validation) | prefit (the best of the model before the fit and every epoch, as before 2026-11-27: a fit that beats no earlier score is undone, its new data unlearnt) | last (max_epochs without early stopping, the last weights; mbrl-lib's PETS)"
        },
    )
    grad_clip: float = field(default=10.0, metadata={"help": "global gradient-norm clip (0: off)"})
    weight_decay: float = field(
        default=0.0,
        metadata={
            "help": "L2 penalty on the networks' weight matrices (Adam's weight_decay; biases, variance bounds and step sizes exempt). PETS decays its weights; mbrl-lib's PETS half-cheetah uses 1e-4 (0: off)"
        },
    )
    warm_start: bool = field(
        default=True, metadata={"help": "continue from the previous iteration's weights instead of re-initialising"}
    )
