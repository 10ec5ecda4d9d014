"""The layering: every import of a package of ours points to a lower layer (so no cycle between packages)."""

from __future__ import annotations

import ast
from pathlib import Path

import learn2adapt

ROOT = Path(learn2adapt.__file__).parent
#: Layer of each top-level module or package; imports may only go to a lower layer (or stay inside).
LAYERS = {
    "errors": 0,
    "types": 0,
    "allocator": 0,
    "cpus": 0,  # the CPUs a process may run on (thread and worker defaults)
    "provenance": 0,  # the package version and source fingerprint
    "progress": 0,  # progress bars for a terminal and for a log file
    "presets": 0,  # TOML files only
    "envs": 1,
    "data": 1,
    "models": 2,
    "planning": 2,
    "adaptation": 3,
    "training": 4,
    "baselines": 4.5,  # model-free training beside the model-based loop
    "experiments": 5,
    "control": 5,  # a trained run as a real-time controller (loads runs like experiments)
    "benchmarks": 5.5,  # measures the layers below; may use experiments.statistics
    "cli": 6,
}


def _imports(path: Path) -> set[str]:
    """Top-level parts of ``learn2adapt`` this file imports (module level and inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out |= {n.split(".")[1] for n in names if n.startswith("learn2adapt.")}
    return out


def test_imports_only_point_down() -> None:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).parts
        if rel == ("__init__.py",):
            continue
        part = rel[0].removesuffix(".py")
        assert part in LAYERS, f"{part}: give the new package a layer in LAYERS"
        for target in _imports(path) - {part}:
            if LAYERS[target] >= LAYERS[part]:
                upward.append(f"{path.relative_to(ROOT)} imports learn2adapt.{target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)
