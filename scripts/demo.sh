#!/usr/bin/env bash
# The main job on the embedded default: set up, start the platform, make one video from a
# prompt, and print where the MP4 is. Extra arguments go to `t2v demo` (--prompt, --seed, --out).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
VENV="$T2V_VENV"
scripts/setup.sh
exec "$VENV/bin/t2v" demo "$@"
