"""mkdocs hook: the API reference pages, generated from ``src/learn2adapt`` on every build.

It walks the source tree, so the reference follows a package or module that is added, moved or
removed with no edit: one page per public package (its modules and subpackages rendered on it by
mkdocstrings, ``show_submodules`` in mkdocs.yml) and one per public top-level module, plus
``reference/index.md`` for the package itself. Private modules (a leading underscore) and
``__main__`` get no page, and mkdocstrings' ``filters`` keep them off the package pages. The
``API reference: reference/`` entry of mkdocs.yml's ``nav`` becomes the list of these pages.
The pages exist only in the build (mkdocs' ``File.generated``); docs/ holds no copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

REFERENCE = "reference/"  # where the pages go under docs/, and the nav entry that lists them


class ApiPage(NamedTuple):
    path: str  # under reference/
    identifier: str  # what the page renders (``::: identifier``)


def _public(name: str) -> bool:
    return not name.startswith("_")


def api_pages(package: Path) -> list[ApiPage]:
    """The reference's pages, in navigation order: the package, then its children by name."""
    name = package.name
    pages = [ApiPage("index.md", name)]
    for child in sorted(package.iterdir()):
        if child.is_dir() and (child / "__init__.py").is_file() and _public(child.name):
            pages.append(ApiPage(f"{child.name}.md", f"{name}.{child.name}"))
        elif child.suffix == ".py" and _public(child.stem):  # drops __init__ and __main__ too
            pages.append(ApiPage(f"{child.stem}.md", f"{name}.{child.stem}"))
    return pages


def page_text(page: ApiPage, pages: list[ApiPage]) -> str:
    """One page's Markdown: an mkdocstrings directive (and, on the index, the list of pages)."""
    if page.path != "index.md":
        return f"::: {page.identifier}\n"
    # The package's own docstring only: each child has its page.
    listing = "".join(f"- [`{p.identifier}`]({p.path})\n" for p in pages[1:])
    return (
        f"# API reference\n\n::: {page.identifier}\n    options:\n      members: false\n"
        f"      show_root_heading: false\n\n"
        f"Generated from the docstrings under `src/{page.identifier}` on every build.\n\n{listing}"
    )


def _package(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).parent / "src" / "learn2adapt"


def _expand(nav: Any, entries: list[dict[str, str]]) -> Any:
    """``nav`` with every ``REFERENCE`` entry replaced by ``entries``."""
    if isinstance(nav, list):
        return [_expand(item, entries) for item in nav]
    if isinstance(nav, dict):
        return {title: entries if value == REFERENCE else _expand(value, entries) for title, value in nav.items()}
    return nav


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    pages = api_pages(_package(config))
    entries = [{p.identifier if p.path != "index.md" else "Overview": REFERENCE + p.path} for p in pages]
    config.nav = _expand(config.nav, entries)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    pages = api_pages(_package(config))
    for page in pages:
        files.append(File.generated(config, REFERENCE + page.path, content=page_text(page, pages)))
    return files
