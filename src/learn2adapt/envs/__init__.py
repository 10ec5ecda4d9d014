"""Environments whose dynamics change: task families, schedules, registration.

Importing this package registers every ``learn2adapt/...`` id with Gymnasium
(lazily: MuJoCo is imported only when a MuJoCo family is made). Plugins and any other
Gymnasium id: :mod:`learn2adapt.envs.catalog`.
"""

from learn2adapt.envs.catalog import (
    FAMILIES,
    PLUGIN_GROUP,
    Family,
    describe_all,
    make_env,
    register_all,
    registered_ids,
    short_name,
)
from learn2adapt.envs.task_env import SPLITS, Task, TaskEnv

register_all()

__all__ = [
    "FAMILIES",
    "PLUGIN_GROUP",
    "Family",
    "SPLITS",
    "Task",
    "TaskEnv",
    "describe_all",
    "make_env",
    "register_all",
    "registered_ids",
    "short_name",
]
