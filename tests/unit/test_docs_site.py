"""The documentation site's cheap parts, without a build (`make test` runs the strict build itself).

Every page under docs/ is in mkdocs.yml's nav; the API reference's pages follow the source tree;
the docstring rewrite turns Sphinx roles and shared Google entries into what mkdocstrings reads;
and a link that leaves docs/ is checked against the repository.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

import griffe
import markdown
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS_SCRIPTS = REPO / "scripts" / "docs"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"l2a_docs_{name}", DOCS_SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclass-like NamedTuples look their module up
    spec.loader.exec_module(module)
    return module


docstrings = _load("docstrings")
api_reference = _load("api_reference")
repo_links = _load("repo_links")


def _nav_paths(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_paths(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_paths(value)]
    raise TypeError(nav)


def test_every_page_under_docs_is_in_the_nav() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    listed = _nav_paths(config["nav"])
    pages = sorted(p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs").rglob("*.md"))
    assert sorted(p for p in listed if p != api_reference.REFERENCE) == pages
    assert api_reference.REFERENCE in listed  # the generated section has its place
    # A page added and not listed fails the strict build too: the nav check is a warning.
    assert config["strict"] is True
    assert config["validation"]["nav"]["omitted_files"] == "warn"
    assert config["validation"]["links"]["anchors"] == "warn"


def test_api_pages_follow_the_source_tree(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    for path in ["__init__.py", "mod.py", "_private.py", "__main__.py", "sub/__init__.py", "sub/inner.py"]:
        (pkg / path).parent.mkdir(parents=True, exist_ok=True)
        (pkg / path).write_text('"""Doc."""\n')
    (pkg / "_hidden").mkdir()
    (pkg / "_hidden" / "__init__.py").write_text("")
    (pkg / "assets").mkdir()  # data, not a package
    (pkg / "assets" / "model.xml").write_text("<mujoco/>")

    pages = api_reference.api_pages(pkg)
    assert [(p.path, p.identifier) for p in pages] == [
        ("index.md", "pkg"),
        ("mod.md", "pkg.mod"),
        ("sub.md", "pkg.sub"),  # sub.inner is rendered on its package's page
    ]
    assert api_reference.page_text(pages[1], pages) == "::: pkg.mod\n"
    index = api_reference.page_text(pages[0], pages)
    assert "::: pkg\n" in index and "- [`pkg.sub`](sub.md)" in index

    nav = [{"Home": "index.md"}, {"API reference": "reference/"}]
    entries = [{"Overview": "reference/index.md"}]
    assert api_reference._expand(nav, entries) == [{"Home": "index.md"}, {"API reference": entries}]


def test_sphinx_roles_become_optional_cross_references() -> None:
    text = (
        "Plans with :class:`Planner` (see :meth:`Planner.plan`, :func:`~pkg.mod.helper`\n"
        "and :mod:`the oracle <pkg.oracle>`); :data:`torch.float32` stays code. For example::\n"
        "\n"
        "    run(x)\n"
    )
    known = {"Planner": "pkg.base.Planner"}

    def resolve(target: str) -> str | None:
        first, _, rest = target.partition(".")
        return f"{known[first]}.{rest}".rstrip(".") if first in known else None

    def ref(identifier: str, title: str) -> str:
        return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'

    assert docstrings.rewrite_roles(text, resolve) == (
        f"Plans with {ref('pkg.base.Planner', 'Planner')} (see {ref('pkg.base.Planner.plan', 'Planner.plan')}, "
        f"{ref('pkg.mod.helper', 'helper')}\n"
        f"and {ref('pkg.oracle', 'the oracle')}); {ref('torch.float32', 'torch.float32')} stays code. For example:\n"
        "\n"
        "    run(x)\n"
    )
    assert docstrings.rewrite_roles("No roles, ``code`` and a: colon.") == "No roles, ``code`` and a: colon."


def test_shared_google_entries_are_split_and_wrapped_lines_kept() -> None:
    text = (
        "Read a recording.\n"
        "\n"
        "Args:\n"
        "    path: the file.\n"
        "    obs_dim, act_dim: the sizes\n"
        "        (checked when given).\n"
        "    lo / hi: the interval.\n"
        "\n"
        "Raises:\n"
        "    UnknownName: unknown id. ConfigError: a bad task space\n"
        "    or function.\n"
        "    ValueError, TypeError: kept as one entry.\n"
    )
    assert docstrings.split_shared_entries(text) == (
        "Read a recording.\n"
        "\n"
        "Args:\n"
        "    path: the file.\n"
        "    obs_dim: the sizes\n"
        "        (checked when given).\n"
        "    act_dim: the sizes\n"
        "        (checked when given).\n"
        "    lo: the interval.\n"
        "    hi: the interval.\n"
        "\n"
        "Raises:\n"
        "    UnknownName: unknown id. ConfigError: a bad task space\n"
        "        or function.\n"
        "    ValueError, TypeError: kept as one entry.\n"
    )


def test_the_griffe_extension_resolves_roles_in_scope(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""The package."""\n')
    (pkg / "errors.py").write_text('class ConfigError(Exception):\n    """Bad option."""\n')
    (pkg / "mod.py").write_text(
        '"""Uses :class:`Helper` and :func:`~pkg.mod.load`."""\n'
        "from pkg.errors import ConfigError\n\n"
        "class Helper:\n"
        '    """Calls :meth:`run`; raises :class:`ConfigError`."""\n\n'
        "    def run(self) -> None:\n"
        '        """Run."""\n\n'
        "def load(obs_dim: int, act_dim: int) -> None:\n"
        '    """Load.\n\n    Args:\n        obs_dim, act_dim: the sizes.\n    """\n'
    )
    (pkg / "old.py").write_text(
        '"""See :func:`pkg.mod.gone`, :class:`~pkg.moved.Thing` and :func:`torch.compile`."""\n'
    )
    with caplog.at_level(logging.WARNING, logger="griffe"):
        loaded = griffe.load("pkg", search_paths=[tmp_path], extensions=griffe.load_extensions(docstrings.Docstrings))
        load = loaded["mod.load"]
        params = load.docstring.parse("google")[1].value
    module_doc = loaded["mod"].docstring.value
    assert '<autoref identifier="pkg.mod.Helper" optional><code>Helper</code></autoref>' in module_doc
    assert 'identifier="pkg.mod.load" optional><code>load</code>' in module_doc  # ~ shows the last name
    helper = loaded["mod.Helper"].docstring.value
    assert 'identifier="pkg.mod.Helper.run"' in helper  # a member of the class
    assert 'identifier="pkg.errors.ConfigError"' in helper  # an import, by where it is defined
    assert [(p.name, str(p.annotation)) for p in params] == [("obs_dim", "int"), ("act_dim", "int")]
    # The shared entry parses with no warning; a role naming an object the package lacks warns
    # (the strict build fails); an outside name (torch) is not checked.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    where = f"{pkg / 'old.py'}:1: pkg.old names"  # the file as griffe names it (absolute: not under the cwd)
    assert warnings == [
        f"{where} :func:`pkg.mod.gone` (pkg.mod.gone), which does not exist",
        f"{where} :class:`~pkg.moved.Thing` (pkg.moved.Thing), which does not exist",
    ]


def test_links_that_leave_docs_are_checked_against_the_repository(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "docs" / "algorithms").mkdir(parents=True)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "README.md").write_text("# Results\n")
    state = repo_links._State(tmp_path / "docs", tmp_path)
    state.page_uri = "algorithms/grbal.md"
    md = markdown.Markdown(extensions=[state])
    source = (
        "[the results](../../results/README.md), [results/README.md](../../results/README.md#x), "
        "[gone](../../results/nope.md), [above](../../../x.md), [a page](../method.md), "
        "[web](https://example.org/a.md), [here](#overview)"
    )
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.repo_links"):
        html = md.convert(source)
    title = 'title="results/README.md, in the repository (not part of this site)"'
    assert f'<span class="repo-path" {title}>the results (<code>results/README.md</code>)</span>' in html
    assert f'<span class="repo-path" {title}>results/README.md</span>' in html  # the path is its text
    assert '<a href="../method.md">a page</a>' in html  # inside docs/: mkdocs checks it
    assert '<a href="https://example.org/a.md">web</a>' in html and '<a href="#overview">here</a>' in html
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "Doc file 'algorithms/grbal.md' links to '../../results/nope.md', "
        "whose target 'results/nope.md' does not exist in the repository.",
        "Doc file 'algorithms/grbal.md' links to '../../../x.md', whose target '../x.md' is above the repository.",
    ]
