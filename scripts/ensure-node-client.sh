#!/usr/bin/env bash
# Installs the npm packages of internal/chaos/node (the WHATWG EventSource client,
# eventsource@4) from its lock file with npm ci, when they are missing or
# older than the lock file. The fault campaign's Node.js subscribers and
# the end-to-end EventSource test (internal/e2e/eventsource_test.go) run
# internal/chaos/node/client.mjs. Idempotent.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v node >/dev/null || { echo "ensure-node-client: Node.js 20+ is required" >&2; exit 1; }
dir="$repo/internal/chaos/node"
stamp="$dir/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$dir/package-lock.json" -nt "$stamp" ]]; then
  command -v npm >/dev/null || { echo "ensure-node-client: npm is required" >&2; exit 1; }
  echo "installing the EventSource client's npm packages (npm ci in internal/chaos/node)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
