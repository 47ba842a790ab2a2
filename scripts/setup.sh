#!/usr/bin/env bash
# Create (or reuse) the virtualenv and install t2v, its model stack and rust_infer into it.
# The venv lives outside the clone so a second run, or CI on the same machine, reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
VENV="$T2V_VENV"
PYTHON="${T2V_PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
fi
# Reinstall only when the dependency list changed since the last run.
stamp="$VENV/.t2v-deps-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/pip" install --quiet -e ".[model,cluster,dev]"
  touch "$stamp"
else
  "$VENV/bin/pip" install --quiet --no-deps -e .
fi
scripts/build_rust.sh
