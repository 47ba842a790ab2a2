#!/usr/bin/env bash
# Make the virtualenv hold exactly the locked dependency set (uv.lock) and build rust_infer into
# it, then build the web UI (scripts/build_web.sh). The virtualenv and the cargo target live
# outside the clone, so a second run, or CI on the same machine, only checks them.
#   scripts/setup.sh [run|test]   which system packages to check first (default: run)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system_deps.sh "${1:-run}"
. scripts/env.sh
if [ ! -x "$T2V_UV" ]; then
  echo "== installing uv $T2V_UV_VERSION"
  uv_home="$(dirname "$(dirname "$T2V_UV")")"
  rm -rf "$uv_home"
  "$T2V_PYTHON" -m venv "$uv_home"
  "$uv_home/bin/pip" install --quiet --disable-pip-version-check "uv==$T2V_UV_VERSION"
fi
# --frozen: install what uv.lock says, never re-resolve; the test command checks the lock
# against pyproject.toml (uv lock --check).
UV_PROJECT_ENVIRONMENT="$T2V_VENV" "$T2V_UV" sync --quiet --frozen --all-extras --python "$T2V_PYTHON"
scripts/build_rust.sh
scripts/build_web.sh
