# Sourced by the scripts: where the build state lives. It sits outside the clone, so a fresh
# clone on the same machine (CI) reuses it; it only speeds things up, since uv installs exactly
# uv.lock into the virtualenv and cargo builds exactly Cargo.lock (--locked).
if [ -z "${T2V_CACHE:-}" ]; then
  if [ "$(id -u)" -eq 0 ] || [ -w /var/cache/t2v ]; then T2V_CACHE=/var/cache/t2v
  else T2V_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/t2v"; fi
fi
export T2V_CACHE
export T2V_VENV="${T2V_VENV:-$T2V_CACHE/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$T2V_CACHE/cargo-target}"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$T2V_CACHE/uv-cache}"
# uv is pinned: the same uv reads and checks uv.lock everywhere.
T2V_UV_VERSION=0.13.9
T2V_UV="$T2V_CACHE/uv-$T2V_UV_VERSION/bin/uv"
T2V_PYTHON="${T2V_PYTHON:-python3.11}"
