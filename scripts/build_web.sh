#!/usr/bin/env bash
# Build the web UI (web/ -> web/dist, which status serves): npm ci when package-lock.json
# changed, then type-check and vite build when the lock or a web source changed. A stamp of
# both hashes makes a second run a check only.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null; then
  echo "npm is missing: apt-get install nodejs npm" >&2
  exit 1
fi
lock_sha="$(sha256sum package-lock.json | cut -d' ' -f1)"
installed_stamp="node_modules/.t2v-lock-sha256"
if [ "$(cat "$installed_stamp" 2>/dev/null)" != "$lock_sha" ]; then
  echo "== npm ci"
  # The browser tests drive Debian's Chromium with playwright-core (never a downloaded browser).
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent
  echo "$lock_sha" >"$installed_stamp"
fi
sources_sha="$(
  { echo "$lock_sha"; find web -path web/dist -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum; } \
    | sha256sum | cut -d' ' -f1
)"
built_stamp="web/dist/.build-sha256"
if [ -f web/dist/index.html ] && [ "$(cat "$built_stamp" 2>/dev/null)" = "$sources_sha" ]; then
  exit 0
fi
echo "== web UI build"
npm run --silent build:web >/dev/null
echo "$sources_sha" >"$built_stamp"
