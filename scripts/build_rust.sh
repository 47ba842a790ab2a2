#!/usr/bin/env bash
# Build the rust_infer extension (release: infer runs it) and install it into the venv for
# development. `maturin develop` installs the package in editable form: rust_infer/python/ is
# put on the venv's path and the built rust_infer/_rust_infer*.so lands beside the Python
# sources, so a change to the Python files needs no rebuild.
#
# PYO3_PYTHON pins the interpreter PyO3 builds for. Use the same setting for `cargo test`
# and `cargo clippy` in rust_infer/ (they link libpython; maturin sets
# PYO3_BUILD_EXTENSION_MODULE itself for the extension, so nothing else is needed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
VENV="$T2V_VENV"
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$(dirname "$T2V_UV"):$PATH" PYO3_PYTHON="$VENV/bin/python"
# --uv: the virtualenv is uv's and has no pip; --locked: exactly Cargo.lock.
maturin develop --uv --release --locked --manifest-path rust_infer/Cargo.toml
