#!/usr/bin/env bash
# The client as a new user gets it: a clean virtualenv holding only clients/python (and its
# dependencies, from the package registry), no torch; then `t2v generate` against a running
# platform (`t2v local`), in a pseudo-terminal so the progress bar is drawn, and the MP4
# decoded with PyAV (from the project's virtualenv: the client needs no PyAV).
#   scripts/client_smoke.sh [URL [t2v generate options...]]
#   URL: default $T2V_URL, else http://127.0.0.1:8080
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
url="${1:-${T2V_URL:-http://127.0.0.1:8080}}"
shift || true
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$T2V_PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check ./clients/python
echo "== installed: $("$work/venv/bin/pip" list --format=freeze | tr '\n' ' ')"
if "$work/venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "torch is in the client's virtualenv" >&2
  exit 1
fi
echo "== no torch"
cd "$work"
command="$work/venv/bin/t2v generate 'a cat surfing' --out cat.mp4 --url $url $*"
echo "== $command"
script -qec "$command" /dev/null
"$T2V_VENV/bin/python" - "$work/cat.mp4" <<'PY'
import sys

import av

with av.open(sys.argv[1]) as container:
    frames = list(container.decode(video=0))
print(f"== PyAV decodes {sys.argv[1]}: {len(frames)} frames, {frames[0].width}x{frames[0].height}")
PY
