#!/usr/bin/env bash
# Every check and test: Rust (cargo test, clippy), lint and types (ruff, mypy, stubtest),
# then pytest. Services the tests need (redis-server, the S3 server, Chromium) are started by
# the tests themselves; .ci/run installs the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
VENV="$T2V_VENV"
scripts/setup.sh test
echo "== kube tools"
# The deploy tests' API server, kine and Knative's webhooks: built once per version (minutes),
# then found in the cache (seconds); building them here keeps that out of the tests' timeouts.
scripts/build_kube_tools.sh >/dev/null
echo "== uv lock --check"
# pyproject.toml and uv.lock must agree: a dependency changed without relocking fails here.
"$T2V_UV" lock --check --python "$T2V_PYTHON"
# node_modules (npm ci) and the web UI (web/dist) come from scripts/setup.sh above, which
# builds them again only when package-lock.json or web/ changed.
export PATH="$VENV/bin:$PATH" PYO3_PYTHON="$VENV/bin/python"
echo "== audit"
# pip-audit on uv.lock, cargo deny on Cargo.lock (scripts/audit.sh says when each may fail).
scripts/audit.sh
echo "== cargo test"
(cd rust_infer && cargo test --locked --quiet)
echo "== cargo clippy"
(cd rust_infer && cargo clippy --locked --quiet --all-targets -- -D warnings)
echo "== ruff"
ruff check t2v functions tests bench clients
ruff format --check t2v functions tests bench clients
echo "== mypy"
mypy t2v tests bench functions/submit/main.py
mypy functions/status/main.py
mypy functions/infer/main.py
mypy functions/notify/main.py
# The client package as the project it is (tests/client/test_standalone.py keeps it apart).
mypy clients/python/src
python -m mypy.stubtest rust_infer --allowlist rust_infer/stubtest-allowlist.txt
echo "== pytest"
set +e
pytest "$@"
code=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
if [ "$code" -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit "$code"
