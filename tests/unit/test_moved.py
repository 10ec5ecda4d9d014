"""Old module names (before issue 41's layout) still import, as the same modules, with a warning."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from learn2adapt.moved import MOVED_MODULES, MOVED_PACKAGES, new_name


def test_old_names_map_to_the_new_modules() -> None:
    assert new_name("learn2adapt.training") == "learn2adapt.run"
    assert new_name("learn2adapt.training.loop") == "learn2adapt.run.loop"
    assert new_name("learn2adapt.experiments.evaluation") == "learn2adapt.evaluation.protocol"
    assert new_name("learn2adapt.run.loop") is None
    assert new_name("learn2adapt.trainingx") is None  # a prefix of a word is not the package


@pytest.mark.parametrize("old", sorted(MOVED_MODULES) + [f"{p}.config" for p in MOVED_PACKAGES])
def test_an_old_name_imports_the_same_module_with_a_warning(old: str) -> None:
    new = importlib.import_module(new_name(old) or "")
    sys.modules.pop(old, None)  # only the alias entry: import it afresh, as a user's first import does
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is new
    assert module.__spec__ is not None and module.__spec__.name == new.__name__  # the real spec is kept
    warned = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert f"{old} moved to {new.__name__}; import it from there (the old name goes in learn2adapt 0.3)" in warned


def test_a_name_imported_from_an_old_module_is_the_new_object() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from learn2adapt.experiments.statistics import mean_ci95 as old
        from learn2adapt.training.config import RunConfig as OldConfig
    from learn2adapt.evaluation.statistics import mean_ci95
    from learn2adapt.run.config import RunConfig

    assert old is mean_ci95 and OldConfig is RunConfig
