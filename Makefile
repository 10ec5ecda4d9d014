# The two set-up commands of README.md: `make demo` and `make test`.
# Each creates or reuses .venv (scripts/venv.sh) and then runs. `make test` also runs
# ruff (lint + format), mypy and the documentation site's strict build before the tests.
# MUJOCO_GL is deliberately not exported: loading EGL in a training process made its
# memory grow during MuJoCo collection. `learn2adapt video` sets MUJOCO_GL=egl itself.

.PHONY: venv demo test bench
venv:
	@bash scripts/venv.sh

demo: venv
	.venv/bin/learn2adapt demo

# Lint, format and type checks first (CI fails on a finding), then the documentation site's
# strict build (a broken link, anchor or reference fails it; its log only on failure: mkdocs'
# own --quiet would hide the warnings that fail a strict build), then every test tier.
test: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	@echo ".venv/bin/mkdocs build --strict --site-dir site"; \
	  log=$$(.venv/bin/mkdocs build --strict --site-dir site 2>&1) || { echo "$$log"; exit 1; }
	.venv/bin/python -m pytest

bench: venv
	.venv/bin/learn2adapt bench
