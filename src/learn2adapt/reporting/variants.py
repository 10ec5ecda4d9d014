"""What ``compare`` compares: an algorithm, or an algorithm with a named set of options (a variant).

An entry of ``--algos`` is ``ALGO`` or ``ALGO+VARIANT``, so one comparison can put the paper's
deterministic models beside their probabilistic-ensemble versions (PETS, Chua et al., NeurIPS
2018), as CaDM and T-MCL report theirs::

    learn2adapt compare --algos mb,grbal,mb+pe,grbal+pe --variant pe:planner.particles=5 ...

``pe`` is built in (:data:`BUILTIN_VARIANTS`: ``model.ensemble=5``, ``planner.particles=20``,
the PETS defaults); ``--variant NAME:KEY=VALUE`` (repeatable) changes one of its options or
defines another variant. A variant's options apply after the preset and ``--set``. Its runs go
to ``runs/ALGO+VARIANT-sSEED``, and reports and ``summary.json`` name them by the entry.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from learn2adapt.adaptation import check_algo
from learn2adapt.adaptation import color as algo_color
from learn2adapt.adaptation import label as algo_label
from learn2adapt.errors import ConfigError

#: Joins an algorithm and a variant in an entry name.
SEPARATOR = "+"
#: Joins an entry and the planner it was evaluated with (``compare --eval-planners``): ``grbal@cem``.
PLANNER_SEPARATOR = "@"
#: How reports name the planners.
PLANNER_LABELS = {"rs": "RS", "cem": "CEM", "mppi": "MPPI", "icem": "iCEM"}

#: Variants every comparison knows: ``pe`` is a probabilistic ensemble of 5 Gaussian members
#: planned with 20 trajectory-sampling particles (PE-TS; docs/algorithms/pets.md).
BUILTIN_VARIANTS: dict[str, dict[str, str]] = {"pe": {"model.ensemble": "5", "planner.particles": "20"}}


@dataclass(frozen=True)
class Entry:
    """One compared entry: ``algo`` with the ``overrides`` of its variant (none for a plain algorithm)."""

    name: str
    algo: str
    variant: str | None = None
    overrides: tuple[str, ...] = ()


def split(name: str) -> tuple[str, str | None]:
    """``"grbal+pe"`` -> ``("grbal", "pe")``; ``"grbal"`` -> ``("grbal", None)`` (a planner suffix dropped)."""
    algo, sep, variant = split_planner(name)[0].partition(SEPARATOR)
    return algo, (variant if sep else None)


def planner_entry(name: str, planner: str) -> str:
    """The report name of entry ``name`` evaluated with ``planner``: ``grbal@cem``."""
    return f"{name}{PLANNER_SEPARATOR}{planner}"


def split_planner(name: str) -> tuple[str, str | None]:
    """``"grbal+pe@cem"`` -> ``("grbal+pe", "cem")``; ``"grbal"`` -> ``("grbal", None)``."""
    entry, sep, planner = name.partition(PLANNER_SEPARATOR)
    return entry, (planner if sep else None)


def base_algo(name: str) -> str:
    """The algorithm of an entry name."""
    return split(name)[0]


def label(name: str) -> str:
    """How reports name an entry: PE-TS for ``mb+pe``, PE-TS + GrBAL for ``grbal+pe``, GrBAL [v] otherwise;
    with the planner it was evaluated with in parentheses, ``GrBAL (CEM)`` for ``grbal@cem``."""
    entry, planner = split_planner(name)
    if planner is not None:
        return f"{label(entry)} ({PLANNER_LABELS.get(planner, planner)})"
    algo, variant = split(entry)
    if variant is None:
        return algo_label(algo)
    if variant == "pe":  # as the peers name them: PE-TS is MB on the ensemble
        return "PE-TS" if algo == "mb" else f"PE-TS + {algo_label(algo)}"
    return f"{algo_label(algo)} [{variant}]"


def one_factor_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs of entries that differ in one part only, at least one of them with a variant or
    evaluated with several planners.

    First ``(ALGO+V, ALGO)``: what the variant does to an algorithm (PE-TS + GrBAL against
    GrBAL); then ``(B+V, A+V)`` for ``B`` after ``A`` in ``names``: what the algorithm does on
    the variant (PE-TS + GrBAL against PE-TS); both under one planner. Then ``(E@P2, E@P1)``:
    what a later planner does to the same trained entry (GrBAL (CEM) against GrBAL (RS)).
    Reports state each pair's paired difference, the question a comparison of ensembles,
    adaptation and planners asks.
    """
    same_algo, same_variant, same_entry = [], [], []
    for i, later in enumerate(names):
        entry_b, planner_b = split_planner(later)
        algo_b, var_b = split(later)
        for earlier in names[:i]:
            entry_a, planner_a = split_planner(earlier)
            if planner_a != planner_b:
                if entry_a == entry_b:
                    same_entry.append((later, earlier))
                continue
            algo_a, var_a = split(earlier)
            if algo_a == algo_b and (var_a is None) != (var_b is None):
                same_algo.append((later, earlier) if var_b is not None else (earlier, later))
            elif var_a is not None and var_a == var_b and algo_a != algo_b:
                same_variant.append((later, earlier))
    return same_algo + same_variant + same_entry


#: How much of its algorithm's colour a variant keeps (the rest is black), chosen by the variant's
#: name: a darker shade of the same hue, so PE-TS + GrBAL sits beside GrBAL in a plot without
#: taking the colour of another algorithm (matplotlib's next colour did: PE-TS was GrBAL's blue).
VARIANT_SHADES = (0.55, 0.75, 0.35)


def color(name: str) -> str | None:
    """The plot colour of an entry: its algorithm's for a plain one, a darker shade of it for a variant
    or a planner other than random shooting (each its own shade)."""
    entry, planner = split_planner(name)
    algo, variant = split(entry)
    base = algo_color(algo)
    shaded_by = "+".join(x for x in (variant, planner if planner != "rs" else None) if x)
    if not shaded_by or base is None:
        return base
    from matplotlib.colors import to_hex, to_rgb  # plotting only

    shade = VARIANT_SHADES[zlib.crc32(shaded_by.encode()) % len(VARIANT_SHADES)]
    r, g, b = to_rgb(base)
    return to_hex((shade * r, shade * g, shade * b))


def parse_variants(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """The built-in variants updated by ``NAME:KEY=VALUE`` specs (``--variant``).

    Raises:
        ConfigError: a spec is not ``NAME:KEY=VALUE``.
    """
    variants = {name: dict(options) for name, options in BUILTIN_VARIANTS.items()}
    for spec in specs:
        name, sep, option = spec.partition(":")
        key, eq, value = option.partition("=")
        if not (sep and eq and name.strip() and key.strip()) or SEPARATOR in name:
            raise ConfigError(f"--variant {spec!r}: expected NAME:KEY=VALUE, e.g. --variant pe:planner.particles=5")
        variants.setdefault(name.strip().lower(), {})[key.strip()] = value.strip()  # as --algos: lower case
    return variants


def parse_entries(names: Sequence[str], variants: Mapping[str, Mapping[str, str]]) -> list[Entry]:
    """One :class:`Entry` per ``--algos`` name.

    Raises:
        UnknownName: an unknown algorithm.
        ConfigError: an unknown variant, or a name given twice.
    """
    entries = []
    for name in names:
        algo, variant = split(name)
        check_algo(algo)
        if variant is None:
            entries.append(Entry(name, algo))
            continue
        if variant not in variants:
            known = ", ".join(sorted(variants))
            raise ConfigError(
                f"unknown variant {variant!r} in {name!r}; known: {known} (define one with --variant {variant}:KEY=VALUE)"
            )
        overrides = tuple(f"{k}={v}" for k, v in variants[variant].items())
        entries.append(Entry(name, algo, variant, overrides))
    if len({e.name for e in entries}) < len(entries):
        raise ConfigError(f"--algos names an entry twice: {','.join(names)}")
    return entries


def variant_specs(entries: Sequence[Entry]) -> list[str]:
    """The ``--variant`` specs that rebuild the variants ``entries`` use (those not built in as they are)."""
    specs: list[str] = []
    for name in dict.fromkeys(e.variant for e in entries if e.variant is not None):
        options = next(e.overrides for e in entries if e.variant == name)
        builtin = BUILTIN_VARIANTS.get(name, {})
        specs += [f"{name}:{o}" for o in options if builtin.get(o.partition("=")[0]) != o.partition("=")[2]]
    return specs
