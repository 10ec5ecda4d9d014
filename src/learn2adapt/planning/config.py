"""Options of the MPC planner: the shared ones, and one typed section per planner.

``planner.horizon`` etc. apply to every planner; ``planner.cem.*``, ``planner.mppi.*``
and ``planner.icem.*`` only to that planner (random shooting has no options of its
own). Each planner class reads its section's fields by name, so "find usages" of a
field leads to the code that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Why ``planner.cuda_graph`` and bf16 rollouts exclude each other on a GPU (autocast's cache of
#: bf16 weight copies cannot live in a graph), and what to do.
CUDA_GRAPH_NEEDS_FP32 = "planner.cuda_graph records fp32 rollouts: on a GPU set planner.precision=fp32 (or auto), or planner.cuda_graph=false"
#: Accepted values of ``planner.propagation`` (trajectory sampling, Chua et al. 2018, section 4.2).
PROPAGATIONS = ("ts_inf", "ts1")
#: Accepted values of ``planner.cem.sampling``.
CEM_SAMPLINGS = ("clipped", "truncated")


@dataclass
class CEMOptions:
    """Cross-entropy method (``planner.name=cem``)."""

    iterations: int = field(default=5, metadata={"help": "refinement iterations per step (N candidates each)"})
    elites: int = field(default=50, metadata={"help": "elites per environment that refit the sampling distribution"})
    alpha: float = field(
        default=0.1, metadata={"help": "smoothing, new = alpha * old + (1 - alpha) * elite statistics"}
    )
    init_std: float = field(
        default=0.5,
        metadata={"positive": True, "help": "initial standard deviation as a fraction of the half action range"},
    )
    sampling: str = field(
        default="clipped",
        metadata={
            "help": "clipped (normal samples clipped to the action bounds) | truncated (normal truncated at 2 std, the std capped at half the distance from the mean to the nearer bound: every sample inside the bounds, as mbrl-lib's PETS)"
        },
    )


@dataclass
class MPPIOptions:
    """Model-predictive path integral control (``planner.name=mppi``)."""

    iterations: int = field(default=1, metadata={"help": "weighted-average updates per step (N candidates each)"})
    temperature: float = field(
        default=1.0,
        metadata={
            "positive": True,
            "help": "temperature lambda of the weights exp(return / lambda); smaller is greedier",
        },
    )
    noise_std: float = field(
        default=0.5,
        metadata={"positive": True, "help": "perturbation standard deviation as a fraction of the half action range"},
    )
    smoothing: float = field(
        default=0.0,
        metadata={"help": "noise filter beta in [0, 1), n_t = (1 - beta) u_t + beta n_(t-1) (0: white noise)"},
    )


@dataclass
class ICEMOptions(CEMOptions):
    """Improved CEM of Pinneri et al., 2020 (``planner.name=icem``): CEM's options (other defaults) and its own."""

    iterations: int = field(default=3, metadata={"help": "refinement iterations per step"})
    elites: int = field(default=10, metadata={"help": "elites per environment"})
    alpha: float = field(default=0.1, metadata={"help": "momentum of mean and std updates"})
    noise_beta: float = field(
        default=2.0,
        metadata={"nonnegative": True, "help": "coloured-noise exponent beta, power spectrum ~ 1/f^beta (0: white)"},
    )
    keep_elites: float = field(
        default=0.3,
        metadata={
            "nonnegative": True,
            "help": "fraction of elites carried to the next iteration (and, shifted, to the next step)",
        },
    )
    population_decay: float = field(
        default=1.25,
        metadata={"positive": True, "help": "population shrinks by this factor per iteration (1: constant)"},
    )


@dataclass
class PlannerConfig:
    """Which planner, and its settings."""

    name: str = field(
        default="rs",
        metadata={
            "help": "planner: rs (random shooting, the paper's simulations) | cem | mppi (the paper's real robot) | icem"
        },
    )
    horizon: int = field(default=10, metadata={"help": "planning horizon H in steps (GrBAL code: 10)"})
    num_candidates: int = field(
        default=500,
        metadata={"help": "candidate action sequences N per environment and per iteration (GrBAL code: 500)"},
    )
    precision: str = field(
        default="fp32",
        metadata={
            "help": "model rollout precision: fp32 | bf16 (autocast; returns summed in fp32) | auto (bf16 on a CPU, fp32 on a GPU)"
        },
    )
    particles: int = field(
        default=1,
        metadata={
            "help": "trajectory-sampling particles per candidate (PETS, Chua et al. 2018): returns averaged over them; with model.ensemble = B, particle p stays on member p mod B (TS-inf); use a multiple of B"
        },
    )
    propagation: str = field(
        default="ts_inf",
        metadata={
            "help": "with particles >= 2: ts_inf (a particle keeps its ensemble member over the horizon) | ts1 (each step the particles of a candidate are shuffled, so each draws its member anew, as mbrl-lib's default)"
        },
    )
    cuda_graph: bool = field(
        default=False,
        metadata={
            "help": "on a GPU in fp32, replay from recorded CUDA graphs each whole plan (every planner and model: MB, PE-TS, GrBAL's, MB+DE's and MOLe's adapted weights, ReBAL's context; only the rollouts under a deadline), GrBAL's and MB+DE's online step and GrBAL's validation pass; what cannot be recorded runs eagerly with a one-line notice; ignored on a CPU"
        },
    )
    cem: CEMOptions = field(default_factory=CEMOptions)
    mppi: MPPIOptions = field(default_factory=MPPIOptions)
    icem: ICEMOptions = field(default_factory=ICEMOptions)
