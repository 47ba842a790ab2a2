# Sourced by the scripts: where the build state lives. Both sit outside the clone, so a fresh
# clone on the same machine (CI) reuses the virtualenv and the compiled Rust crates.
export T2V_VENV="${T2V_VENV:-/var/cache/t2v/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/t2v/cargo-target}"
