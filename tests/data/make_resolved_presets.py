"""Write ``resolved_presets.json``: every preset of every family, resolved for every algorithm.

``tests/test_presets.py`` checks that each resolved preset still equals this snapshot, so a
refactoring of the preset files cannot silently change an experiment. Regenerate only when a
preset change is intended (and say so in the commit)::

    python tests/data/make_resolved_presets.py
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from learn2adapt.adaptation import ALGORITHMS
from learn2adapt.run.presets import list_presets, preset_config

PATH = Path(__file__).with_name("resolved_presets.json")


def resolved_presets() -> dict:
    """``{family: {preset: {algo: asdict(preset_config(env, preset, algo))}}}``."""
    out: dict = {}
    for family, data in sorted(list_presets().items()):
        presets = [name for name, value in data.items() if isinstance(value, dict)]
        out[family] = {
            name: {algo: dataclasses.asdict(preset_config(data["env"], name, algo)) for algo in ALGORITHMS}
            for name in presets
        }
    return out


def dumps(snapshot: dict) -> str:
    return json.dumps(snapshot, sort_keys=True, indent=2) + "\n"


if __name__ == "__main__":
    PATH.write_text(dumps(resolved_presets()))
    print(f"wrote {PATH}")
