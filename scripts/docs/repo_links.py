"""mkdocs hook: links from docs/ to the rest of the repository (``hooks:`` in mkdocs.yml).

The pages are also read on the repository's web view, where ``../results/pets/README.md`` or
``../CONTRIBUTING.md`` is a working link; on the site, which holds only docs/, it has no target,
and there is no fixed repository URL to point it to. So a relative link that leaves docs/ is
checked here instead of by mkdocs: its target must exist in the repository (relative to the
page's own file), or the build logs a warning, which fails the strict build; a target that exists
is rendered as its text plus its repository path, not as a dead link. Anchors of such links are
not checked (the repository's web view slugs headings its own way). Links inside docs/ are left
to mkdocs, whose ``validation`` settings in mkdocs.yml make a missing page or anchor fail too.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as etree

from markdown import Markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.repo_links")


def repo_target(href: str, page_uri: str, docs_dir: Path, repo_root: Path) -> tuple[str, str] | None:
    """Classify a link ``href`` of the page ``docs_dir/page_uri``.

    Returns:
        None for a link mkdocs checks itself (external, absolute, an anchor, or inside docs/);
        otherwise ``(status, path)``, ``path`` relative to the repository root and ``status`` one
        of ``"ok"``, ``"missing"`` (no such file or folder) or ``"outside"`` (above the repository).
    """
    scheme, netloc, path, _, _ = urlsplit(href)
    if scheme or netloc or not path or path.startswith(("/", "\\")):
        return None
    docs = posixpath.relpath(docs_dir.as_posix(), repo_root.as_posix())
    target = posixpath.normpath(posixpath.join(docs, posixpath.dirname(page_uri), unquote(path)))
    if target == docs or target.startswith(docs + "/"):
        return None
    if target == ".." or target.startswith("../"):
        return "outside", target
    return ("ok" if (repo_root / target).exists() else "missing"), target


class RepoLinks(Treeprocessor):
    """Check each link of a page that leaves docs/, and render it as text plus its path."""

    def __init__(self, md: Markdown, hook: _State) -> None:
        super().__init__(md)
        self.hook = hook

    def run(self, root: etree.Element) -> None:
        page_uri = self.hook.page_uri
        if page_uri is None:  # Markdown converted between pages
            return
        for a in root.iter("a"):
            found = repo_target(a.get("href", ""), page_uri, self.hook.docs_dir, self.hook.repo_root)
            if found is None:
                continue
            status, path = found
            if status != "ok":  # a warning (strict: a failed build), then rendered like the others
                where = "is above the repository" if status == "outside" else "does not exist in the repository"
                log.warning(f"Doc file '{page_uri}' links to '{a.get('href')}', whose target '{path}' {where}.")
            # Not on the site: keep the words, show where the file is.
            a.tag = "span"
            a.attrib.pop("href")
            a.set("class", "repo-path")
            a.set("title", f"{path}, in the repository (not part of this site)")
            if path.rstrip("/") not in "".join(a.itertext()):
                if len(a):
                    a[-1].tail = (a[-1].tail or "") + " ("
                else:
                    a.text = (a.text or "") + " ("
                code = etree.SubElement(a, "code")
                code.text = path
                code.tail = ")"


class _State(Extension):
    """The Markdown extension, and what the tree processor needs to know about the current page."""

    def __init__(self, docs_dir: Path, repo_root: Path) -> None:
        super().__init__()
        self.docs_dir, self.repo_root = docs_dir, repo_root
        self.page_uri: str | None = None

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 (Python-Markdown's name)
        # After inline parsing (20), before mkdocs' own link check ("relpath", 0).
        md.treeprocessors.register(RepoLinks(md, self), "l2a_repo_links", 2)


_state: _State | None = None


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    global _state
    _state = _State(Path(config.docs_dir), Path(config.config_file_path).parent)
    config.markdown_extensions.append(_state)  # an instance: Python-Markdown takes both
    return config


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    assert _state is not None
    _state.page_uri = page.file.src_uri  # the page about to be rendered
    return markdown


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    assert _state is not None
    _state.page_uri = None
    return html
