#!/usr/bin/env bash
# Checks the system packages a step needs before any long step starts. As root it installs the
# missing ones with apt-get; otherwise it stops at once with the command to run.
#   scripts/system_deps.sh run    building and running the platform (the demo)
#   scripts/system_deps.sh test   the test suite too (services the tests start, the browser)
set -euo pipefail
profile="${1:-run}"
cd "$(dirname "$0")/.."
. scripts/env.sh
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need "$T2V_PYTHON" python3.11
"$T2V_PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3.11-venv)
need cc gcc
need pkg-config pkg-config
# openh264 (rust_infer's encoder) compiles its x86 SIMD assembly only when nasm is present.
need nasm nasm
# The web UI status serves is built with Vite (scripts/build_web.sh).
need node nodejs
need npm npm
if [ "$profile" = test ]; then
  need redis-server redis-server
  need ffprobe ffmpeg
  need chromium chromium
  need promtool prometheus
  need wrk wrk
  need go golang-go
  # The deploy tests run Knative's webhooks in network namespaces of their own, joined to the
  # test API server by socat (tests/deploy/knative_webhooks.py).
  need socat socat
  need ip iproute2
  need unshare util-linux
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "== installing system packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "missing system packages; run this, then try again:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
# Rust: PyO3 0.30 needs rustc 1.85 (rust_infer/Cargo.toml's rust-version).
rust_ok() {
  command -v cargo >/dev/null 2>&1 || return 1
  local v; v="$(rustc --version | cut -d' ' -f2)"
  [ "$(printf '%s\n1.85.0\n' "$v" | sort -V | head -n1)" = 1.85.0 ]
}
if ! rust_ok; then
  echo "rust_infer needs Rust 1.85 or newer (cargo and rustc on PATH): install it with rustup" >&2
  echo "  (or Debian 13's 'apt-get install cargo'), then try again." >&2
  exit 1
fi
if [ "$profile" = test ] && ! command -v kubectl >/dev/null && ! command -v kustomize >/dev/null; then
  # The deploy tests build the kustomize overlays with kubectl or a standalone kustomize.
  if [ "$(id -u)" -eq 0 ]; then GOBIN=/usr/local/bin go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
  else echo "install kubectl or kustomize (go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0)" >&2; exit 1; fi
fi
