"""Every error a user can cause, in one place (the bottom layer: it imports nothing of ours).

Each layer raises these directly, with a message that says what to change; the command
line prints any :class:`UserError` as one line and exits with status 2, and nothing
already written to a run directory is lost.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors caused by input (options, files, data), not by a bug."""


class ConfigError(UserError, ValueError):
    """A bad configuration: unknown key, unparsable value, impossible setting."""


class UnknownName(ConfigError):
    """An unknown environment, algorithm, planner, preset, schedule or benchmark name."""


class NotEnoughSegments(ConfigError):
    """The collected episodes hold no segment of the requested length to train on."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, truncated, corrupt, or does not match its run's config."""


class RunDirBusy(UserError):
    """Another live process writes to the same run (or comparison) directory."""


class TrainingDiverged(UserError, RuntimeError):
    """Training produced NaN/inf; the run directory keeps its last good checkpoint."""


class NonFiniteData(UserError, RuntimeError):
    """The environment returned NaN or infinity (an observation or a reward)."""


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite inside a fit (the training loop turns it into :class:`TrainingDiverged`)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm, Ray and Kubernetes send first), raised where the process is, so that it
    unwinds like Ctrl-C: the current iteration is abandoned, the last checkpoint kept."""
