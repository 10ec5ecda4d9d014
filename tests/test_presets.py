"""Every preset of every environment family resolves to a config the parts accept."""

import pytest

from learn2adapt.adaptation import ALGORITHMS
from learn2adapt.envs import make_env
from learn2adapt.training.config import ConfigError, list_presets, preset_config
from learn2adapt.training.loop import build_planner, build_rule

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
