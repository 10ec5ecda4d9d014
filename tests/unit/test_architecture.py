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
    "moved": 0,  # the table of moved module names (deprecation aliases; imports nothing statically)
    "presets": 0,  # TOML files only
    "envs": 1,
    "data": 1,
    "models": 2,
    "planning": 2,
    "adaptation": 3,
    "run": 4,  # config, training loop, agent, rollouts, run directories
    "baselines": 5,  # model-free training beside the model-based loop
    "evaluation": 5,  # the held-out protocol, oracle, diagnosis, statistics
    "control": 5,  # a trained run as a real-time controller
    "reporting": 6,  # records, reports, plots, claims (reads evaluations)
    "experiments": 7,  # comparisons, sweeps, runners, videos (train, evaluate, report)
    "benchmarks": 8,  # measures the layers below; may use evaluation.statistics
    "cli": 9,
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


def test_layers_are_whole_numbers() -> None:
    assert all(isinstance(layer, int) for layer in LAYERS.values())


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


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _file_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, anywhere in the file (TYPE_CHECKING blocks and
    function bodies included): ``from learn2adapt.a import b`` counts as importing ``a.b`` if that
    is a module, else ``a``."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("learn2adapt"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("learn2adapt")}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycle_between_files() -> None:
    cycles = _cycles(_file_graph())
    assert not cycles, "modules that import each other (TYPE_CHECKING included):\n" + "\n".join(map(str, cycles))


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_package_imports_another_packages_private_names() -> None:
    private = []
    for path in sorted(ROOT.rglob("*.py")):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("learn2adapt."):
                if node.module.split(".")[1] != package:
                    private += [
                        f"{path.relative_to(ROOT)}: {node.module}.{a.name}"
                        for a in node.names
                        if a.name.startswith("_")
                    ]
    assert not private, "private names used across packages:\n" + "\n".join(private)


#: Issue 41's limits: a module a reader takes in at once, a function that fits on a screen, and no
#: package that is a second home for everything.
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_PACKAGE_SHARE = 450, 80, 0.15


def test_no_module_or_function_is_too_long_to_read() -> None:
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not long, f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function:\n" + "\n".join(long)


def test_no_package_holds_more_than_its_share_of_the_code() -> None:
    sizes: dict[str, int] = {}
    for path in ROOT.rglob("*.py"):
        part = path.relative_to(ROOT).parts[0]
        sizes[part] = sizes.get(part, 0) + len(path.read_text().splitlines())
    total = sum(sizes.values())
    assert {p: n for p, n in sizes.items() if n > MAX_PACKAGE_SHARE * total} == {}, (total, sizes)
