#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) and install learn2adapt into it.
# torch is pinned first so that pip never falls through to an unpinned (multi-GB CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC="${L2A_TORCH_SPEC:-torch==2.13.0}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.l2a-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing $TORCH_SPEC and learn2adapt (editable) into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,cluster,baselines,stats,minari,docs]" "$TORCH_SPEC"
  touch "$stamp"
fi
