"""Griffe extension: our docstrings, as mkdocstrings renders them in the API reference.

mkdocstrings-python parses the docstrings as Google style, in Markdown. This extension rewrites
what else ours use on the loaded docstrings, before they are parsed (``src/`` is not edited):

- Sphinx roles (:func:`name`, :class:`~pkg.mod.Class`, :meth:`Class.method`, :mod:`pkg.mod`,
  :attr:`a`, :data:`b`) become *optional* cross-references: a link where the reference renders
  the object, code where it does not (a private name, an object without a docstring, torch).
  ``<autoref identifier=... optional>`` is the element mkdocstrings-python's own templates emit
  for annotations; mkdocs-autorefs turns it into a link or a plain ``<span>``. A literal block
  introduced by ``text::`` (reStructuredText) loses one colon, as Sphinx shows it.
- A role naming an object of the package that the package does not have (a module that moved,
  a renamed function) is a warning, so the strict build fails on a stale reference.
- In Google sections, one entry for several parameters (``obs, act: ...`` as Sphinx's napoleon
  reads it, or ``lo / hi: ...``) becomes one entry per parameter, and a wrapped line left at the entries' indentation
  joins the entry above it instead of being dropped with a warning.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import griffe

_logger = griffe.get_logger("l2a_docstrings")

# :role:`target`, :role:`~target`, :role:`title <target>`: the roles our docstrings use and the
# Python domain's others, with or without ``py:``.
ROLE_RE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|const|exc|obj):`(?P<body>[^`]+)`")
# A line ending in "::" after some text.
LITERAL_INTRO_RE = re.compile(r"(?<=\S)::$", flags=re.MULTILINE)
# Google sections whose entries are "name: description" (griffe's names for them).
NAMED_SECTIONS = {"args", "arguments", "params", "parameters", "attributes", "raises", "exceptions"}
NAMED_SECTIONS |= {f"{kind} {what}" for kind in ("keyword", "other") for what in ("args", "arguments", "parameters")}
ENTRY_RE = re.compile(r"(?P<names>[*\w.]+(?:\s*[,/]\s*[*\w.]+)*)\s*(?P<type>\(.*\))?\s*:(?:\s|$)")

Resolver = Callable[[str], "str | None"]


def _split(body: str) -> tuple[str, str]:
    """The (title, target) of a role's body, as Sphinx reads it."""
    explicit = re.fullmatch(r"(?P<title>.*?)\s*<(?P<target>[^<>]+)>", body, flags=re.DOTALL)
    if explicit:
        return explicit["title"], explicit["target"].strip()
    target = body.strip()
    if target.startswith("~"):  # ~a.b.C shows C
        target = target[1:]
        return target.rsplit(".", 1)[-1], target
    return target.lstrip("."), target.lstrip(".")  # Sphinx's relative ".name"


def rewrite_roles(text: str, resolve: Resolver | None = None) -> str:
    """``text`` with its Sphinx roles as optional cross-references, in Markdown.

    Args:
        text: A docstring.
        resolve: Maps a role's target to the full path of the object it names (``None`` when it
            cannot); without it, or when it returns ``None``, the target is the identifier.

    Returns:
        The docstring with each role as ``<autoref identifier="PATH" optional><code>TITLE</code></autoref>``
        and each literal-block introduction ``text::`` as ``text:``.
    """

    def replace(match: re.Match[str]) -> str:
        title, target = _split(match["body"])
        identifier = (resolve(target) if resolve else None) or target
        return f'<autoref identifier="{html.escape(identifier)}" optional><code>{html.escape(title)}</code></autoref>'

    return LITERAL_INTRO_RE.sub(":", ROLE_RE.sub(replace, text))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_shared_entries(text: str) -> str:
    """``text`` with each Google entry for several names split, and stray wrapped lines indented.

    In a section of named entries (Args, Attributes, Raises...), ``a, b: description`` or
    ``a / b: description`` (and its continuation lines) becomes ``a: description`` and
    ``b: description`` (not in Raises, whose ``A, B:`` griffe reads as one entry), and a line at the entries' indentation that is not an
    entry becomes a continuation line of the one above.
    """
    lines, out = text.split("\n"), []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        section = line.strip()[:-1].lower() if line.rstrip().endswith(":") else ""
        if section not in NAMED_SECTIONS:
            continue
        header, indent = _indent(line), 0
        entries: list[list[str]] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > header):
            line = lines[i]
            i += 1
            if not entries:
                if line.strip():
                    indent = _indent(line)
                    entries.append([line])
                else:
                    out.append(line)
                continue
            if line.strip() and _indent(line) == indent:
                if ENTRY_RE.match(line.strip()):
                    entries.append([line])
                    continue
                line = " " * indent + line  # a wrapped line: continue the entry above
            entries[-1].append(line)
        for first, *more in entries:
            after: list[str] = []  # the blank lines that end the entry stay after its copies
            while more and not more[-1].strip():
                after.insert(0, more.pop())
            match = ENTRY_RE.match(first.strip())
            names = re.split(r"\s*[,/]\s*", match["names"]) if match else []
            if match is None or len(names) < 2 or section in {"raises", "exceptions"}:
                out.extend([first, *more, *after])
                continue
            typ = f" {match['type']}" if match["type"] else ""
            rest = first.strip()[match.end() :]
            for name in names:
                out.extend([f"{' ' * indent}{name}{typ}: {rest}".rstrip(), *more])
            out.extend(after)
    return "\n".join(out)


def scope_resolver(obj: griffe.Object) -> Resolver:
    """Resolve a role's target as Python would from where the docstring is (griffe's scope rules)."""

    def resolve(target: str) -> str | None:
        first, _, rest = target.partition(".")
        try:
            path = obj.resolve(first)  # the object's members, then each enclosing scope's
        except griffe.NameResolutionError:
            return None  # a full path (learn2adapt.x.y) or an outside name: left as written
        return f"{path}.{rest}" if rest else path

    return resolve


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def stale_references(pkg: griffe.Module, obj: griffe.Object) -> list[str]:
    """The roles of ``obj``'s docstring that name an object of ``pkg`` that ``pkg`` does not have."""
    if obj.docstring is None:
        return []
    resolve, stale = scope_resolver(obj), []
    for match in ROLE_RE.finditer(obj.docstring.value):
        target = _split(match["body"])[1]
        identifier = resolve(target) or target
        if identifier.startswith(pkg.name + "."):
            try:
                pkg[identifier[len(pkg.name) + 1 :]]
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                stale.append(f"{match[0]} ({identifier})")
    return stale


class Docstrings(griffe.Extension):
    """Rewrite every docstring of a loaded package as the module docstring says.

    A role naming an object of the package that does not exist (a module that moved, a renamed
    function) is a warning, which fails the strict build; outside names stay unchecked.
    """

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is None:
                continue
            for stale in stale_references(pkg, obj):
                _logger.warning(
                    f"{obj.relative_filepath}:{obj.docstring.lineno}: {obj.path} names {stale}, which does not exist"
                )
            text = split_shared_entries(obj.docstring.value)
            obj.docstring.value = rewrite_roles(text, scope_resolver(obj))
