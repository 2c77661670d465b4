#!/usr/bin/env bash
# Installs the dev packages of clients/js (eventsource@4 for its tests,
# typescript for the declarations check) from its lock file with npm ci,
# when they are missing or older than the lock file. The JavaScript
# client's tests (clients/js/js_test.go runs node --test clients/js/test)
# need them. Idempotent.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v node >/dev/null || { echo "ensure-js-client: Node.js 20+ is required" >&2; exit 1; }
dir="$repo/clients/js"
stamp="$dir/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$dir/package-lock.json" -nt "$stamp" ]]; then
  command -v npm >/dev/null || { echo "ensure-js-client: npm is required" >&2; exit 1; }
  echo "installing the JavaScript client's npm dev packages (npm ci in clients/js)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
