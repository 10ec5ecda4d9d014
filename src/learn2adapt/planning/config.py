"""Options of the MPC planner (one flat table; per-planner options carry the planner's prefix)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PlannerConfig:
    """Which planner, and its settings.

    Options prefixed ``cem_``, ``mppi_`` or ``icem_`` only affect that planner; the
    factory :func:`learn2adapt.planning.make_planner` passes them on without the prefix.
    """

    name: str = field(default="rs", metadata={"help": "planner: rs (random shooting, the paper's simulations) | cem | mppi (the paper's real robot) | icem"})
    horizon: int = field(default=10, metadata={"help": "planning horizon H in steps (GrBAL code: 10)"})
    num_candidates: int = field(default=500, metadata={"help": "candidate action sequences N per environment and per iteration (GrBAL code: 500)"})
    precision: str = field(default="fp32", metadata={"help": "model rollout precision: fp32 | bf16 (autocast; returns summed in fp32)"})

    cem_iterations: int = field(default=5, metadata={"help": "CEM: refinement iterations per step (N candidates each)"})
    cem_elites: int = field(default=50, metadata={"help": "CEM: elites per environment that refit the sampling distribution"})
    cem_alpha: float = field(default=0.1, metadata={"help": "CEM: smoothing, new = alpha * old + (1 - alpha) * elite statistics"})
    cem_init_std: float = field(default=0.5, metadata={"help": "CEM: initial standard deviation as a fraction of the half action range"})

    mppi_iterations: int = field(default=1, metadata={"help": "MPPI: weighted-average updates per step (N candidates each)"})
    mppi_temperature: float = field(default=1.0, metadata={"help": "MPPI: temperature lambda of the weights exp(return / lambda); smaller is greedier"})
    mppi_noise_std: float = field(default=0.5, metadata={"help": "MPPI: perturbation standard deviation as a fraction of the half action range"})
    mppi_smoothing: float = field(default=0.0, metadata={"help": "MPPI: noise filter beta in [0, 1), n_t = (1 - beta) u_t + beta n_(t-1) (0: white noise)"})

    icem_iterations: int = field(default=3, metadata={"help": "iCEM: refinement iterations per step"})
    icem_elites: int = field(default=10, metadata={"help": "iCEM: elites per environment"})
    icem_alpha: float = field(default=0.1, metadata={"help": "iCEM: momentum of mean and std updates"})
    icem_init_std: float = field(default=0.5, metadata={"help": "iCEM: initial standard deviation as a fraction of the half action range"})
    icem_noise_beta: float = field(default=2.0, metadata={"help": "iCEM: coloured-noise exponent beta, power spectrum ~ 1/f^beta (0: white)"})
    icem_keep_elites: float = field(default=0.3, metadata={"help": "iCEM: fraction of elites carried to the next iteration (and, shifted, to the next step)"})
    icem_population_decay: float = field(default=1.25, metadata={"help": "iCEM: population shrinks by this factor per iteration (1: constant)"})
