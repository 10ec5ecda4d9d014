"""Modules and names that moved in 0.2 (issue 41), importable under their old names for one release.

``import learn2adapt.training.config`` still works and gives the module that is now
``learn2adapt.run.config`` (the same object, so patches and ``isinstance`` checks agree), with a
:class:`DeprecationWarning` that names the new home. The old names go in 0.3. CHANGELOG.md lists
every moved public name.

A name that moved to another module (``learn2adapt.run.loop.build_rule``, now in
:mod:`learn2adapt.run.build`) is still found in the old one, with the same warning: the old
module sets ``__getattr__ = moved_names(__name__, {...})`` under ``if not TYPE_CHECKING:``, so
that mypy still flags a name imported from the wrong module.

This module imports nothing of ours at import time, so it sits at the bottom of the layers: the
alias is resolved by :mod:`importlib` only when an old name is imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

#: Old package prefix -> new one: every module below the old one moved with it.
MOVED_PACKAGES = {"learn2adapt.training": "learn2adapt.run"}

#: Old module -> new module, for modules that changed package or name.
MOVED_MODULES = {
    "learn2adapt.experiments.evaluation": "learn2adapt.evaluation.protocol",
    "learn2adapt.experiments.oracle": "learn2adapt.evaluation.oracle",
    "learn2adapt.experiments.planning_diagnosis": "learn2adapt.evaluation.diagnosis",
    "learn2adapt.experiments.statistics": "learn2adapt.evaluation.statistics",
    "learn2adapt.experiments.records": "learn2adapt.reporting.records",
    "learn2adapt.experiments.report": "learn2adapt.reporting.report",
    "learn2adapt.experiments.plots": "learn2adapt.reporting.plots",
    "learn2adapt.experiments.aggregate": "learn2adapt.reporting.aggregate",
    "learn2adapt.experiments.claims": "learn2adapt.reporting.claims",
    "learn2adapt.experiments.budgets": "learn2adapt.reporting.budgets",
    "learn2adapt.experiments.variants": "learn2adapt.reporting.variants",
    "learn2adapt.experiments.record": "learn2adapt.run.record",
    "learn2adapt.data.normalizer": "learn2adapt.models.normalizer",  # the model's statistics, with the model
}


def moved_names(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``module``, whose names in ``moved`` (name -> the module
    it moved to) stay importable from it for one release, with a :class:`DeprecationWarning` that
    names the new home (``__getattr__ = moved_names(__name__, {...})``; PEP 562).

    The new module is imported only when an old name is asked for.
    """

    def __getattr__(name: str) -> Any:
        new = moved.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} moved to {new}.{name}; import it from there (the old name goes in learn2adapt 0.3)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new), name)

    return __getattr__


def new_name(old: str) -> str | None:
    """The module an old name now refers to, or None if ``old`` did not move."""
    if old in MOVED_MODULES:
        return MOVED_MODULES[old]
    for before, after in MOVED_PACKAGES.items():
        if old == before or old.startswith(before + "."):
            return after + old[len(before) :]
    return None


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and loads it as the module it moved to."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = new_name(fullname)
        if new is None:
            return None
        module = importlib.import_module(new)
        spec = importlib.machinery.ModuleSpec(fullname, self, is_package=hasattr(module, "__path__"))
        spec.loader_state = (module, module.__spec__)
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {spec.loader_state[0].__name__}; import it from there "
            "(the old name goes in learn2adapt 0.3)",
            DeprecationWarning,
            stacklevel=2,
        )
        return spec.loader_state[0]

    def exec_module(self, module: ModuleType) -> None:
        # The module already ran under its new name; importlib only replaced its __spec__.
        module.__spec__ = module.__spec__.loader_state[1]  # type: ignore[union-attr]


def install() -> None:
    """Make the old names importable (once; :mod:`learn2adapt` calls it on import)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())  # before the path finder, which would load a second copy
