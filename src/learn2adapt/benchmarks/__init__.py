"""Benchmarks behind ``learn2adapt bench``: each module has ``run(...) -> dict[str, float]``."""
