"""Compared entries: an algorithm, or ALGO+VARIANT with the variant's options."""

import pytest

from learn2adapt.errors import ConfigError, UnknownName
from learn2adapt.reporting.variants import (
    BUILTIN_VARIANTS,
    color,
    label,
    parse_entries,
    parse_variants,
    split,
    variant_specs,
)


def test_a_spec_changes_a_builtin_variant_or_defines_another():
    variants = parse_variants(["pe:planner.particles=5", "Wide:model.hidden=[512, 512]"])
    assert variants["pe"] == {"model.ensemble": "5", "planner.particles": "5"}
    assert variants["wide"] == {"model.hidden": "[512, 512]"}
    assert BUILTIN_VARIANTS["pe"]["planner.particles"] == "20"  # the built-in table is not changed


@pytest.mark.parametrize("spec", ["pe", "pe:planner.particles", ":x=1", "a+b:x=1", "pe:=3"])
def test_a_malformed_variant_spec_is_refused(spec):
    with pytest.raises(ConfigError, match="NAME:KEY=VALUE"):
        parse_variants([spec])


def test_entries_carry_their_variant_options():
    entries = parse_entries(["mb", "grbal+pe"], parse_variants(["pe:planner.particles=5"]))
    assert [(e.name, e.algo, e.variant) for e in entries] == [("mb", "mb", None), ("grbal+pe", "grbal", "pe")]
    assert entries[0].overrides == () and entries[1].overrides == ("model.ensemble=5", "planner.particles=5")
    # The command line that rebuilds them repeats only what differs from the built-in table.
    assert variant_specs(entries) == ["pe:planner.particles=5"]
    assert parse_entries(["grbal+pe"], parse_variants(variant_specs(entries)))[0] == entries[1]


def test_unknown_algorithms_variants_and_repeats_are_refused():
    with pytest.raises(UnknownName, match="unknown algorithm"):
        parse_entries(["grbl+pe"], parse_variants([]))
    with pytest.raises(ConfigError, match="unknown variant 'big'.*--variant big:KEY=VALUE"):
        parse_entries(["grbal+big"], parse_variants([]))
    with pytest.raises(ConfigError, match="twice"):
        parse_entries(["mb", "mb+pe", "mb"], parse_variants([]))


def test_reports_name_the_ensemble_versions_as_the_peers_do():
    assert split("grbal+pe") == ("grbal", "pe") and split("mb") == ("mb", None)
    assert label("mb+pe") == "PE-TS" and label("grbal+pe") == "PE-TS + GrBAL" and label("mbde+pe") == "PE-TS + MB+DE"
    assert label("rebal+wide") == "ReBAL [wide]" and label("mb") == "MB"


def test_a_variant_is_drawn_in_a_shade_of_its_algorithm_never_in_another_algorithms_colour():
    from matplotlib.colors import to_hex

    from learn2adapt.adaptation import ALGORITHMS

    plain = {to_hex(color(a)) for a in ALGORITHMS}
    assert len(plain) == len(ALGORITHMS)  # the algorithms themselves are told apart
    for algo in ALGORITHMS:
        for variant in ("pe", "wide", "bf16fits"):
            shade = color(f"{algo}+{variant}")
            assert shade is not None and shade not in plain, (algo, variant, shade)
            assert shade == color(f"{algo}+{variant}")  # the same in every plot


def test_one_factor_pairs_ask_what_the_variant_and_what_the_algorithm_change():
    from learn2adapt.reporting.variants import one_factor_pairs

    assert one_factor_pairs(["mb", "mb+pe", "grbal", "grbal+pe"]) == [
        ("mb+pe", "mb"),
        ("grbal+pe", "grbal"),
        ("grbal+pe", "mb+pe"),
    ]
    # the order of --algos decides only which algorithm of a same-variant pair comes first
    assert one_factor_pairs(["grbal+pe", "mb+pe", "mb", "grbal"]) == [
        ("mb+pe", "mb"),
        ("grbal+pe", "grbal"),
        ("mb+pe", "grbal+pe"),
    ]
    assert one_factor_pairs(["mb", "grbal", "rebal"]) == []  # no variant: the best-against-all list says it
    assert one_factor_pairs(["grbal+pe", "mb+big"]) == []  # two parts differ
