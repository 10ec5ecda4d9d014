"""learn2adapt: model-based RL that adapts online to changing dynamics.

Implements "Learning to Adapt in Dynamic, Real-World Environments Through
Meta-Reinforcement Learning" (Nagabandi, Clavera et al., ICLR 2019): GrBAL,
ReBAL and their baselines (MB, MB+DE) with model-predictive control.

Importing the package registers the ``learn2adapt/...`` Gymnasium environments.
"""

from learn2adapt import envs as _envs  # noqa: F401  (registers environments)
from learn2adapt import moved as _moved
from learn2adapt.provenance import VERSION as __version__  # noqa: F401  (the package version)
from learn2adapt.provenance import code_version as _code_version

# Fingerprint the sources now, as this process loads them: a file edited on disk while a long
# comparison runs must not be credited with evaluations the old code makes.
_code_version()

# Old module names (learn2adapt.training...) still import, with a warning, for one release.
_moved.install()
