"""The code fingerprint evaluations record (any source edit changes it, documentation does not),
and the evaluation files that use it: what a comparison may reuse, and nothing written is lost."""

import json

from learn2adapt import __version__
from learn2adapt.evaluation.results import (
    EvalResult,
    TaskResult,
    add_to_protocol,
    load_current,
    load_protocol,
    save_protocol,
)
from learn2adapt.provenance import code_version, fingerprint


def test_fingerprint_follows_sources_presets_and_names_only(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "presets").mkdir()
    (tmp_path / "models" / "mlp.py").write_text("x = 1\n")
    (tmp_path / "presets" / "a.toml").write_text("[quick]\n")
    first = fingerprint(tmp_path)
    assert len(first) == 12 and fingerprint(tmp_path) == first
    (tmp_path / "README.md").write_text("notes")  # not code
    assert fingerprint(tmp_path) == first
    (tmp_path / "models" / "mlp.py").write_text("x = 1  # why\n")  # a comment is an edit
    edited = fingerprint(tmp_path)
    assert edited != first
    (tmp_path / "presets" / "a.toml").write_text("[paper]\n")
    assert fingerprint(tmp_path) not in (first, edited)
    (tmp_path / "presets" / "a.toml").write_text("[quick]\n")
    (tmp_path / "models" / "mlp.py").rename(tmp_path / "models" / "net.py")  # same bytes, other name
    assert fingerprint(tmp_path) not in (first, edited)


def test_code_version_names_the_package_version():
    version, _, digits = code_version().partition("+")
    assert version == __version__ and len(digits) == 12 and int(digits, 16) >= 0


def _result(schedule: str, code: str, test_time: tuple[str, ...] = (), ret: float = 1.0) -> EvalResult:
    return EvalResult("env", "mb", schedule, [TaskResult({"mass": 1.0}, [ret])], code=code, test_time=list(test_time))


def test_protocol_files_keep_other_schedules_and_set_aside_other_code(tmp_path):
    path = tmp_path / "eval.json"
    add_to_protocol(_result("fixed", code_version(), ret=1.0), path)
    add_to_protocol(_result("switch:t=20", code_version(), ret=2.0), path)
    saved = load_protocol(path)
    assert list(saved) == ["fixed", "switch:t=20"] and saved["fixed"].all_returns == [1.0]
    assert json.loads(path.read_text())["schedule"] == "fixed"  # the first schedule at top level

    save_protocol({"fixed": _result("fixed", "0.0.1+0123456789ab", ret=5.0)}, path)  # an older version's file
    assert load_current(path) == {} and set(load_current(path, reuse_stale=True)) == {"fixed"}
    add_to_protocol(_result("switch:t=20", code_version(), ret=3.0), path)
    assert list(load_protocol(path)) == ["switch:t=20"]  # nothing of the older code mixed in...
    kept = load_protocol(tmp_path / "eval-0.0.1+0123456789ab.json")  # ...and nothing lost
    assert kept["fixed"].all_returns == [5.0]


def test_an_evaluation_with_test_time_changes_is_never_the_runs_own(tmp_path):
    path = tmp_path / "eval.json"
    save_protocol({"fixed": _result("fixed", code_version(), ("planner.particles=20",))}, path)
    assert load_current(path) == {} and load_current(path, reuse_stale=True) == {}
    assert EvalResult.from_json(json.loads(path.read_text())).test_time == ["planner.particles=20"]
    add_to_protocol(_result("fixed", code_version()), path)  # replacing it keeps it aside
    assert load_protocol(tmp_path / f"eval-{code_version()}.json")["fixed"].test_time == ["planner.particles=20"]
