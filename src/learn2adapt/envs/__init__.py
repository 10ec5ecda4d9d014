"""Environments whose dynamics change: task families, schedules, registration."""

from learn2adapt.envs.task_env import SPLITS, Task, TaskEnv

__all__ = ["SPLITS", "Task", "TaskEnv"]
