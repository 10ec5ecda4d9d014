"""Every preset of every environment family resolves to a config the parts accept."""

import json
import runpy
from pathlib import Path

import pytest

from learn2adapt.adaptation import ALGORITHMS, MODEL_FREE
from learn2adapt.envs import make_env
from learn2adapt.errors import ConfigError
from learn2adapt.run import config
from learn2adapt.run import presets as run_presets
from learn2adapt.run.build import build_planner, build_rule
from learn2adapt.run.presets import list_presets, preset_config

FAMILIES = sorted(list_presets())


def preset_names(family: str) -> list[str]:
    return [name for name, value in list_presets()[family].items() if isinstance(value, dict)]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_preset_and_algorithm_builds(family):
    data = list_presets()[family]
    names = preset_names(family)
    assert {"quick", "paper"} <= set(names), f"{family}: every family has a quick and a paper preset"
    env = make_env(data["env"])
    try:
        for name in names:
            for algo in ALGORITHMS:
                cfg = preset_config(data["env"], name, algo).validate()
                assert cfg.env == data["env"] and cfg.algo == algo
                if algo in MODEL_FREE:
                    continue  # no rule or planner: tests/e2e/test_baselines.py builds those
                build_rule(cfg, env)
                build_planner(cfg, env, cfg.num_envs, seed=0)
    finally:
        env.close()


def test_per_algorithm_tables_override_the_preset():
    env_id = list_presets()["halfcheetah_disabled_joint"]["env"]
    grbal, mb = (preset_config(env_id, "paper", algo) for algo in ("grbal", "mb"))
    assert grbal.model.hidden == [512, 512, 512] and mb.model.hidden == [512, 512]
    assert (grbal.planner.num_candidates, mb.planner.num_candidates) == (500, 2000)


def test_unknown_preset_names_the_available_ones():
    env_id = list_presets()["pendulum"]["env"]
    with pytest.raises(ConfigError, match="available: .*quick"):
        preset_config(env_id, "nosuch")


# --- the preset files resolve to the recorded experiments -------------------------------------
SNAPSHOT_DIR = Path(__file__).parents[1] / "data"
SNAPSHOT = runpy.run_path(str(SNAPSHOT_DIR / "make_resolved_presets.py"))  # resolved_presets(), dumps()


@pytest.fixture(scope="module")
def snapshot():
    return json.loads((SNAPSHOT_DIR / "resolved_presets.json").read_text())


@pytest.fixture(scope="module")
def resolved():
    return SNAPSHOT["resolved_presets"]()


def test_snapshot_covers_every_family_preset_and_algorithm(snapshot, resolved):
    names = lambda tree: {(f, p, a) for f in tree for p in tree[f] for a in tree[f][p]}  # noqa: E731
    assert names(resolved) == names(snapshot), (
        "presets added or removed: if intended, regenerate "
        "tests/data/resolved_presets.json (tests/data/make_resolved_presets.py)"
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_every_resolved_preset_equals_the_snapshot(family, snapshot, resolved):
    """No change of the preset files (or of config defaults) silently changes an experiment."""
    dumps = SNAPSHOT["dumps"]
    if dumps(resolved.get(family)) == dumps(snapshot.get(family)):  # exact: 1 and 1.0 differ
        return
    changed = []
    for preset, algos in resolved.get(family, {}).items():
        for algo, cfg in algos.items():
            before = dict(_leaves(snapshot.get(family, {}).get(preset, {}).get(algo, {})))
            changed += [
                f"{preset}/{algo}: {'.'.join(path)}: {before.get(path)!r} -> {value!r}"
                for path, value in _leaves(cfg)
                if dumps(before.get(path)) != dumps(value)
            ]
    pytest.fail(
        f"{family}: resolved presets differ from tests/data/resolved_presets.json (regenerate it only "
        "when the change is intended):\n  " + "\n  ".join(changed or ["(presets added or removed)"])
    )


def _leaves(table, prefix=()):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _lookup(table, path):
    for key in path:
        if not isinstance(table, dict) or key not in table:
            return None
        table = table[key]
    return table


@pytest.mark.parametrize("family", FAMILIES)
def test_family_files_hold_only_their_differences(family):
    base, families = run_presets._read_presets()
    data = families[family]
    repeated = []
    for name in run_presets._preset_names(base, data):
        own = {k: v for k, v in data.get(name, {}).items() if k != "base"}
        parent = data.get(name, {}).get("base")
        start = base.get(name, {}) if parent is None else run_presets._resolve_preset(family, data, base, parent)
        repeated += [
            f"[{name}] {'.'.join(path)} = {value!r}" for path, value in _leaves(own) if _lookup(start, path) == value
        ]
    assert not repeated, f"{family}.toml repeats what its base already gives: {'; '.join(repeated)}"


def test_presets_resolve_by_deep_merge_onto_their_base(monkeypatch):
    env_id = "learn2adapt/PendulumVaried-v0"
    base = {
        "quick": {"iterations": 4, "fit": {"max_epochs": 20, "patience": 4}, "mb": {"fit": {"batch_size": 64}}},
        "paper": {"iterations": 50},
    }
    family = {
        "env": env_id,
        "quick": {"fit": {"max_epochs": 40}, "mb": {"num_envs": 2}},
        "extra": {"base": "quick", "iterations": 7},
    }
    monkeypatch.setattr(run_presets, "_read_presets", lambda: (base, {"fake": family}))
    presets = list_presets()["fake"]
    assert list(presets) == ["env", "quick", "paper", "extra"]
    assert presets["extra"] == {
        "iterations": 7,
        "fit": {"max_epochs": 40, "patience": 4},
        "mb": {"fit": {"batch_size": 64}, "num_envs": 2},
    }
    assert base["quick"]["fit"] == {"max_epochs": 20, "patience": 4}, "resolution must not modify the files' tables"
    mb, grbal = (preset_config(env_id, "extra", algo) for algo in ("mb", "grbal"))
    assert (mb.iterations, mb.fit.max_epochs, mb.fit.patience, mb.fit.batch_size, mb.num_envs) == (7, 40, 4, 64, 2)
    assert (grbal.fit.batch_size, grbal.num_envs) == (config.FitConfig().batch_size, config.RunConfig().num_envs)
    assert preset_config(env_id, "paper", "mb").iterations == 50
    family["extra"]["base"] = "extra"
    with pytest.raises(ConfigError, match="its own base"):
        preset_config(env_id, "extra")
    family["extra"]["base"] = "nosuch"
    with pytest.raises(ConfigError, match="not a preset of fake"):
        preset_config(env_id, "extra")


def test_configs_saved_with_flat_planner_keys_still_load():
    from learn2adapt.run.options import from_dict

    cfg = from_dict({"planner": {"name": "cem", "cem_iterations": 3, "mppi_temperature": 0.5}})
    assert cfg.planner.cem.iterations == 3 and cfg.planner.mppi.temperature == 0.5
    old = {"adaptation": {"rnn_short_past": 0.3, "short_past": 0.0}}
    assert from_dict({"algo": "rebal", **old}).adaptation.short_past == 0.3
    assert from_dict({"algo": "grbal", "adaptation": {"rnn_short_past": 0.3}}).adaptation.short_past == 0.0


def test_runs_saved_before_val_split_keep_the_split_they_were_trained_with():
    from learn2adapt.run.config import RunConfig
    from learn2adapt.run.options import from_dict

    assert RunConfig().fit.val_split == "stable"
    assert from_dict({"fit": {"lr": 1e-3}}).fit.val_split == "redraw"  # a config.json older than the option
    assert from_dict({"fit": {"val_split": "stable"}}).fit.val_split == "stable"


def test_runs_saved_before_fit_select_keep_the_fits_they_were_trained_with():
    from learn2adapt.run.config import RunConfig
    from learn2adapt.run.options import from_dict

    assert RunConfig().fit.select == "epoch"
    assert from_dict({"fit": {"lr": 1e-3}}).fit.select == "prefit"  # a config.json older than the option
    assert from_dict({"fit": {"select": "last"}}).fit.select == "last"
