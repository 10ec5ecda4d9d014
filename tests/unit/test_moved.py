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


#: Names that moved between modules (issue 41), as (old module, name, new module).
MOVED_NAMES = [
    ("learn2adapt.run.config", "apply_overrides", "learn2adapt.run.options"),
    ("learn2adapt.run.config", "load_config", "learn2adapt.run.options"),
    ("learn2adapt.run.config", "preset_config", "learn2adapt.run.presets"),
    ("learn2adapt.run.loop", "build_planner", "learn2adapt.run.build"),
    ("learn2adapt.run.loop", "build_rule", "learn2adapt.run.build"),
    ("learn2adapt.run.loop", "mpc_agent", "learn2adapt.run.build"),
    ("learn2adapt.run.loop", "RunState", "learn2adapt.run.state"),
    ("learn2adapt.run.loop", "load_run", "learn2adapt.run.state"),
    *[
        ("learn2adapt.evaluation.protocol", name, "learn2adapt.evaluation.results")
        for name in ("EvalResult", "TaskResult", "load_protocol", "save_protocol", "load_current", "set_aside_stale")
    ],
    ("learn2adapt.experiments.compare", "check_run_dir", "learn2adapt.experiments.jobs"),
    ("learn2adapt.experiments.compare", "run_job", "learn2adapt.experiments.execution"),
    ("learn2adapt.experiments.compare", "STORAGES", "learn2adapt.experiments.execution"),
    ("learn2adapt.experiments.compare", "evaluate_into", "learn2adapt.experiments.planner_evals"),
    ("learn2adapt.experiments.compare", "budget_probe", "learn2adapt.experiments.budget_evals"),
    ("learn2adapt.reporting.report", "compare_sentence", "learn2adapt.reporting.verdicts"),
    ("learn2adapt.reporting.report", "RECOVERY_WINDOW", "learn2adapt.reporting.records"),
    ("learn2adapt.adaptation.mole", "M_STEP_MIN_WEIGHT", "learn2adapt.adaptation.mixture"),
    ("learn2adapt.planning.base", "WarmStartPlanner", "learn2adapt.planning.warm_start"),
]


def test_the_moved_names_are_those_the_modules_list() -> None:
    listed = {
        (old, name, new)
        for old in ("learn2adapt.run.config", "learn2adapt.run.loop")
        for name, new in importlib.import_module(old)._MOVED.items()
    }
    assert listed == {m for m in MOVED_NAMES if m[0] in ("learn2adapt.run.config", "learn2adapt.run.loop")}


@pytest.mark.parametrize(("old", "name", "new"), MOVED_NAMES)
def test_a_moved_name_imports_from_its_old_module_with_a_warning(old: str, name: str, new: str) -> None:
    module = importlib.import_module(old)
    assert name not in vars(module)  # one definition, in its new module: the old one only finds it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(f"from {old} import {name} as found", namespace := {})
    assert namespace["found"] is getattr(importlib.import_module(new), name)
    (warning,) = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert str(warning.message) == (
        f"{old}.{name} moved to {new}.{name}; import it from there (the old name goes in learn2adapt 0.3)"
    )
    assert warning.filename == "<string>"  # the warning points at the import, not at learn2adapt


def test_a_name_that_never_was_in_the_module_is_still_missing() -> None:
    import learn2adapt.run.config as config

    with pytest.raises(AttributeError, match="module 'learn2adapt.run.config' has no attribute 'nosuch'"):
        config.nosuch  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'nosuch'"):
        exec("from learn2adapt.run.loop import nosuch", {})
    assert not hasattr(config, "train")  # hasattr sees no moved name that is not listed


def test_the_names_users_import_still_import_from_their_old_modules() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from learn2adapt.evaluation.protocol import evaluate, recall_measures  # noqa: F401  (still there)
        from learn2adapt.experiments.compare import compare  # noqa: F401
        from learn2adapt.reporting.report import write_report  # noqa: F401
    with pytest.warns(DeprecationWarning, match="learn2adapt.evaluation.results"):
        from learn2adapt.evaluation.protocol import EvalResult, load_protocol  # noqa: F401
