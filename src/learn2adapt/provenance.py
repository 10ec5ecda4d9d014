"""Which code wrote a result: the package version and a fingerprint of its source.

An evaluation is a function of the trained model *and* of the code that runs it (numerics of
the planner's kernels, how random streams are seeded). A comparison that reuses evaluations
written by older code can pair numbers no single version of the library would produce, so
every evaluation records :func:`code_version` and ``compare`` redoes the ones that differ.

The fingerprint hashes every Python source, preset and asset file of the installed package, so
it changes with any edit of the code (comments included) and with nothing else (not with the
documentation, not with the git history).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

#: The package version (``learn2adapt.__version__``; pyproject.toml holds the same string).
VERSION = "0.1.0"

#: The files whose content makes up the fingerprint (relative to the package directory).
_PATTERNS = ("**/*.py", "presets/*.toml", "envs/assets/*.xml")


def fingerprint(root: Path) -> str:
    """12 hex digits of the SHA-256 of the package files under ``root`` (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted({p for pattern in _PATTERNS for p in Path(root).glob(pattern)}):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def code_version() -> str:
    """``"<version>+<fingerprint>"`` of the installed package, e.g. ``0.1.0+3f2a9c0d1e4b``."""
    return f"{VERSION}+{fingerprint(Path(__file__).parent)}"
