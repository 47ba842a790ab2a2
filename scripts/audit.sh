#!/usr/bin/env bash
# Supply-chain checks: pip-audit on the locked Python set (uv.lock, every extra) against
# PyPI's vulnerability data, and cargo deny (licenses, bans, sources) on rust_infer's
# Cargo.lock with rust_infer/deny.toml. The tools are pinned and installed once into
# $T2V_CACHE/audit-tools (cargo-deny compiles for minutes the first time).
#
# PyPI's vulnerability API may be unreachable (an offline CI box, a registry mirror without
# it): pip-audit then says so and does not fail the run unless T2V_AUDIT_REQUIRED=1. cargo
# deny needs only Cargo.lock and the crates' metadata, and must pass.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
PIP_AUDIT_VERSION=2.10.1
CARGO_DENY_VERSION=0.20.2
TOOLS="$T2V_CACHE/audit-tools"
mkdir -p "$TOOLS"

if [ ! -x "$TOOLS/venv/bin/pip-audit" ] || \
   ! "$TOOLS/venv/bin/pip-audit" --version | grep -q " $PIP_AUDIT_VERSION\$"; then
  "$T2V_UV" venv --quiet --allow-existing --python "$T2V_PYTHON" "$TOOLS/venv"
  "$T2V_UV" pip install --quiet --python "$TOOLS/venv/bin/python" "pip-audit==$PIP_AUDIT_VERSION"
fi
if [ ! -x "$TOOLS/bin/cargo-deny" ] || \
   ! "$TOOLS/bin/cargo-deny" --version | grep -q " $CARGO_DENY_VERSION\$"; then
  nice cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION" --root "$TOOLS"
fi

echo "== cargo deny"
(cd rust_infer && "$TOOLS/bin/cargo-deny" --locked check licenses bans sources)

echo "== pip-audit"
requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
# Hashes and every extra: exactly what uv.lock can install, nothing resolved anew; our own
# packages (the project, the client by path) are not on PyPI, so they are left out.
"$T2V_UV" export --quiet --frozen --all-extras --no-emit-project --no-emit-local --format requirements-txt \
  > "$requirements"
set +e
output="$("$TOOLS/venv/bin/pip-audit" -r "$requirements" --no-deps --disable-pip \
  --progress-spinner off 2>&1)"
code=$?
set -e
echo "$output"
# A package PyPI's JSON API does not answer for is skipped ("could not be audited") and
# pip-audit still exits 0: that is an audit that did not run, not a clean one.
skipped="$(grep -c "could not be audited" <<<"$output" || true)"
found_vulnerabilities="$(grep -cE "^Found [0-9]+ known vulnerabilit" <<<"$output" || true)"
if [ "$code" -eq 0 ] && [ "$skipped" -eq 0 ]; then exit 0; fi
if [ "$found_vulnerabilities" -gt 0 ]; then exit 1; fi
unreachable_pattern="connection|resolve|timed out|unreachable|HTTPSConnectionPool|network"
if [ "$skipped" -gt 0 ] || grep -qiE "$unreachable_pattern" <<<"$output"; then
  echo "pip-audit: PyPI's vulnerability API did not answer from here ($skipped packages not" \
    "audited); set T2V_AUDIT_REQUIRED=1 to make that a failure"
  if [ "${T2V_AUDIT_REQUIRED:-0}" = "1" ]; then exit 1; fi
  exit 0
fi
exit "$code"
